"""metaspin_snn.data"""
