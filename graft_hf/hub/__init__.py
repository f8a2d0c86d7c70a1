"""graft_hf.hub"""
