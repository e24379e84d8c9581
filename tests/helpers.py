"""Small builders shared by tests."""

from typing import Any


def job_spec(**overrides: Any) -> dict[str, Any]:
    """A valid, fully specified job spec as the API layer hands it to the application."""
    spec: dict[str, Any] = {
        "job_id": None,
        "job_id_prefix": "test",
        "batch_sizes": [8, 16, 32, 64],
        "default_batch_size": 32,
        "eta_knob": 0.5,
        "beta_knob": 2.0,
        "target_metric": 0.5,
        "higher_is_better_metric": True,
        "max_epochs": 10,
        "num_pruning_rounds": 2,
        "window_size": 0,
        "mab_prior_mean": 0.0,
        "mab_prior_precision": 0.0,
        "mab_num_explorations": 2,
        "mab_seed": 1,
        "max_power": 300.0,
        "number_of_gpus": 1,
        "gpu_model": "V100",
    }
    spec.update(overrides)
    return spec


# A job spec as Zeus's client sends it over HTTP (the server fills in the defaults).
CLIENT_SPEC = {
    "job_id_prefix": "api",
    "batch_sizes": [64, 16, 32],
    "default_batch_size": 32,
    "max_epochs": 5,
    "max_power": 300,
    "number_of_gpus": 1,
    "gpu_model": "V100",
    "mab_seed": 3,
}
