"""The MLflow permission plan (pure): who gets which permission on what, and for how long."""

from __future__ import annotations

import pytest

from flops_manager.identity import tracking_policy as policy


def test_each_project_grants_owner_manage_writer_edit_reader_read() -> None:
    plan = policy.access_plan(owner="alice", project_id="p1", project_name="digits",
                              model="digits-model")
    assert plan.experiment == "alice/flops-digits"
    assert plan.logins == ("alice", "flops-project-p1-aggregator", "flops-project-p1-reader")
    assert set(plan.grants) == {
        policy.Grant(user, kind, name, permission)
        for user, permission in (("alice", "MANAGE"), ("flops-project-p1-aggregator", "EDIT"),
                                 ("flops-project-p1-reader", "READ"))
        for kind, name in (("experiment", "alice/flops-digits"),
                           ("registered_model", "digits-model"))
    }


def test_without_a_registered_model_only_the_experiment_is_granted() -> None:
    plan = policy.access_plan(owner="bob", project_id="p2", project_name=None, model=None)
    assert plan.experiment == "bob/flops-p2"
    assert {g.resource_type for g in plan.grants} == {"experiment"}


def test_two_owners_projects_of_one_name_never_share_an_experiment() -> None:
    assert (policy.experiment_name("alice", "x", "p1")
            != policy.experiment_name("bob", "x", "p2"))


@pytest.mark.parametrize(("role", "login"), [
    ("aggregator", "flops-project-p1-aggregator"),
    ("model_builder", "flops-project-p1-reader"),
    ("inference_server", "flops-project-p1-reader"),
    ("learners", None), ("builder", None), ("cluster_aggregator", None), ("data_server", None),
])
def test_only_roles_that_talk_to_mlflow_get_a_login(role: str, login: str | None) -> None:
    assert policy.login_of_role("p1", role) == login
    env = policy.login_env("p1", role, key="k")
    assert env == ({} if login is None else {
        "MLFLOW_TRACKING_USERNAME": login,
        "MLFLOW_TRACKING_PASSWORD": policy.derive_password("k", login)})


def test_passwords_are_derived_per_login_and_key() -> None:
    one = policy.derive_password("key", "alice")
    assert one == policy.derive_password("key", "alice") and len(one) >= 12  # MLflow's minimum
    assert one != policy.derive_password("key", "bob")
    assert one != policy.derive_password("other key", "alice")


@pytest.mark.parametrize(("standalone", "service", "ended"), [
    (False, None, ["flops-project-p1-aggregator"]),  # the project ended
    (True, None, ["flops-project-p1-aggregator", "flops-project-p1-reader"]),  # deleted
    (True, "p1-inference-2", []),  # one extra inference server removed
])
def test_logins_end_with_the_project(standalone: bool, service: str | None,
                                     ended: list[str]) -> None:
    assert policy.ended_logins("p1", standalone=standalone, service=service) == ended


@pytest.mark.parametrize(("owner", "refused"), [
    ("alice", False), ("admin", True), ("flops-project-p1-aggregator", True),
    ("a:b", True), (" ", True),
])
def test_owner_names_that_cannot_be_logins_are_refused(owner: str, refused: bool) -> None:
    assert (policy.owner_refusal(owner, admin="admin") is not None) is refused


def test_a_resource_is_an_owner_s_only_with_the_manager_s_proof() -> None:
    tags = policy.ownership_tags("key", "experiment", "alice/flops-x", "alice")
    assert policy.ownership_conflict("key", "experiment", "alice/flops-x", tags,
                                     owner="alice") is None
    for name, owner, found in [
        ("alice/flops-x", "bob", tags),  # another owner
        ("alice/flops-y", "alice", tags),  # the proof of another name
        ("alice/flops-x", "alice", {policy.OWNER_TAG: "alice"}),  # no proof
        ("alice/flops-x", "alice", {**tags, policy.PROOF_TAG: "forged"}),
    ]:
        reason = policy.ownership_conflict("key", "experiment", name, found, owner=owner)
        assert reason is not None and "choose another project name" in reason
        assert "created in MLflow by someone else than FLOps" in reason
