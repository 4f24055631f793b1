"""metaspin_snn.export"""
