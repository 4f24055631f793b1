"""metaspin_snn.networks"""
