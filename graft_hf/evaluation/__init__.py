"""graft_hf.evaluation"""
