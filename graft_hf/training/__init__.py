"""graft_hf.training"""
