"""graft_hf.pairs"""
