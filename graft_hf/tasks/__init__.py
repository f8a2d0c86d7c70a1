"""graft_hf.tasks"""
