"""Where studies live: Optuna's storage, a per-epoch metrics table beside it, and artifacts; a trial's model back.

One URL names everything: a SQLite file for one machine (WAL, busy timeout, several
workers plus optuna-dashboard at once) or a PostgreSQL server for many machines.
"""

from ._artifacts import artifact_dir, artifact_store
from ._atomic import atomic_path, write_all_atomic, write_atomic
from ._engines import DEFAULT_URL
from ._epochs import MAX_STUDY_NAME, EpochLog
from ._locks import study_lock
from ._optuna_private import set_study_system_attrs, trial_id, trial_of, trials_with_heartbeat
from ._secrets import shown_url
from ._studies import check_writable, list_studies, load_ours, open_existing, open_storage, study_names
from ._trials import best_trial, load_trial, study_attrs, trial_weights

__all__ = [
    "DEFAULT_URL",
    "EpochLog",
    "MAX_STUDY_NAME",
    "artifact_dir",
    "artifact_store",
    "atomic_path",
    "best_trial",
    "check_writable",
    "list_studies",
    "load_ours",
    "load_trial",
    "open_existing",
    "open_storage",
    "set_study_system_attrs",
    "shown_url",
    "study_attrs",
    "study_lock",
    "study_names",
    "trial_id",
    "trial_of",
    "trial_weights",
    "trials_with_heartbeat",
    "write_all_atomic",
    "write_atomic",
]
