import itertools

from flops_contracts.aggregator_settings import AggregatorSettings
from flops_contracts.config import load_settings
from flops_contracts.spec import parse_spec
from flops_manager.cli.local_plan import LocalRun, main_process, plan_processes
from learner_base.settings import LearnerSettings


def ports():
    counter = itertools.count(20000)
    return lambda: next(counter)


def test_classic_plan_points_learners_at_the_aggregator():
    spec = parse_spec({"training": {"learners": 3, "rounds": 2}})
    run = LocalRun(repo_dir="/repo", training=spec.training, events_uri="file:///tmp/e.jsonl",
                   data_tags=("digits",), data_servers=("grpc://a:1", "grpc://b:2", "grpc://c:3"))
    plans = plan_processes(run, ports())
    assert [p.role for p in plans] == ["classic", "learner", "learner", "learner"]
    main = load_settings(AggregatorSettings, environ=main_process(plans).env)
    assert main.listen_address == "127.0.0.1:20000" and main.expected_clients == 3
    learners = [load_settings(LearnerSettings, environ=p.env) for p in plans[1:]]
    assert {s.server_address for s in learners} == {"127.0.0.1:20000"}
    assert [s.data_server for s in learners] == ["grpc://a:1", "grpc://b:2", "grpc://c:3"]
    assert all(s.data_tags == ["digits"] for s in learners)
    assert all(p.argv[1:] == ["-m", p.module] for p in plans)  # configuration only in env


def test_hierarchical_plan_numbers_shards_across_clusters():
    spec = parse_spec({"training": {"mode": "hierarchical", "cycles": 2, "learners": 2,
                                    "clusters": ["east", "west"]}})
    plans = plan_processes(LocalRun(repo_dir="/repo", training=spec.training), ports())
    assert [p.role for p in plans] == ["root", "cluster", "learner", "learner",
                                       "cluster", "learner", "learner"]
    root = load_settings(AggregatorSettings, environ=plans[0].env)
    assert root.expected_clients == 2
    east = load_settings(AggregatorSettings, environ=plans[1].env)
    assert east.root_address == root.listen_address and east.cluster_name == "east"
    learners = [load_settings(LearnerSettings, environ=p.env) for p in plans
                if p.role == "learner"]
    assert [(s.learner_index, s.learner_count) for s in learners] == [
        (0, 4), (1, 4), (2, 4), (3, 4)]
    assert learners[0].server_address == east.listen_address
    assert learners[2].server_address != east.listen_address
