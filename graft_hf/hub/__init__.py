"""Hub I/O of GRAFT: repo names, the registry of the paper's models, model cards from training records, one-commit
pushes of models, pairs datasets, demo galleries and the demo Space, checkpoint conversion.

`graft_hf.hub.convert` (the authors' checkpoints) is imported on use: it is not re-exported here.
"""

from graft_hf.hub.cards import (
    EvalRecord,
    ModelCardInfo,
    check_model_card,
    eval_results_table,
    load_eval_results,
    model_card_template_path,
    render_model_card,
)
from graft_hf.hub.naming import model_repo_name, validate_model_repo_id, validate_repo_id
from graft_hf.hub.push import (
    HubPushError,
    PushResult,
    check_dataset_card,
    push_dataset,
    push_model,
    stage_model_files,
)
from graft_hf.hub.records import card_info_from_train_config
from graft_hf.hub.registry import (
    MODELS,
    RegisteredModel,
    get_model_info,
    list_models,
    load_model,
    load_processor,
    resolve_model,
)
from graft_hf.hub.space import push_gallery, push_space, stage_space

__all__ = [
    "MODELS",
    "EvalRecord",
    "HubPushError",
    "ModelCardInfo",
    "RegisteredModel",
    "PushResult",
    "card_info_from_train_config",
    "check_dataset_card",
    "check_model_card",
    "eval_results_table",
    "get_model_info",
    "list_models",
    "load_eval_results",
    "load_model",
    "load_processor",
    "model_card_template_path",
    "model_repo_name",
    "push_dataset",
    "push_gallery",
    "push_model",
    "push_space",
    "render_model_card",
    "resolve_model",
    "stage_model_files",
    "stage_space",
    "validate_model_repo_id",
    "validate_repo_id",
]
