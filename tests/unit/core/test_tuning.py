"""Worker process settings: made by default, a user's own values win, each can be switched off."""

from wool import tuning


def test_workers_get_malloc_and_grpc_settings_by_default() -> None:
    env = tuning.worker_environment({})
    assert env["GRPC_EXPERIMENTS"] == tuning.GRPC_EXPERIMENTS
    if tuning.enabled():
        assert env["MALLOC_MMAP_THRESHOLD_"] == str(tuning.MMAP_THRESHOLD)


def test_a_users_grpc_experiments_pass_unchanged() -> None:
    env = tuning.worker_environment({"GRPC_EXPERIMENTS": "my_own"})
    assert env["GRPC_EXPERIMENTS"] == "my_own"


def test_grpc_tuning_can_be_switched_off() -> None:
    env = tuning.worker_environment({"WOOL_TUNE_GRPC": "0"})
    assert "GRPC_EXPERIMENTS" not in env
