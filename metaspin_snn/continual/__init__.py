"""metaspin_snn.continual"""
