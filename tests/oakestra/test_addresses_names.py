from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flops_manager.adapters.oakestra import addresses, names
from flops_manager.adapters.oakestra.errors import InvalidSpecError

POOL = addresses.AddressPool()  # the default round-robin pool

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
flops_names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(ALNUM),
    st.text(alphabet=ALNUM + "._-", max_size=40),
)
taken_addresses = st.lists(
    st.one_of(
        st.builds(POOL.address, st.integers(0, POOL.size - 1)),
        st.ip_addresses(v=4).map(str),
        st.text(max_size=10),
        st.none(),
    ),
    max_size=60,
)


@settings(max_examples=1000, deadline=None)
@given(project=flops_names, services=st.lists(flops_names, min_size=1, max_size=15),
       taken=taken_addresses)
def test_allocation_never_collides_and_is_deterministic(project, services, taken):
    result = POOL.allocate_many(app=project, services=services, taken=taken)
    assert set(result) == set(services)
    values = list(result.values())
    assert len(values) == len(set(values))
    assert not set(values) & addresses.normalize(taken)
    for value in values:
        ip = ipaddress.IPv4Address(value)
        assert ip in ipaddress.IPv4Network("10.30.0.0/16")
        assert POOL.contains(value)
    again = POOL.allocate_many(app=project, services=list(reversed(services)),
                                         taken=list(reversed(taken)))
    assert again == result


@settings(max_examples=1000, deadline=None)
@given(project=flops_names, service=flops_names, taken=taken_addresses)
def test_single_allocation_matches_first_free_candidate(project, service, taken):
    value = POOL.allocate(app=project, service=service, taken=taken)
    assert value not in addresses.normalize(taken)
    assert value == POOL.allocate(app=project, service=service, taken=taken)
    start = POOL.first_candidate(app=project, service=service)
    if POOL.address(start) not in addresses.normalize(taken):
        assert value == POOL.address(start)


def test_pool_edges_and_exhaustion():
    assert POOL.address(0) == "10.30.128.1"
    assert POOL.address(POOL.size - 1) == "10.30.255.254"
    with pytest.raises(ValueError):
        POOL.address(POOL.size)
    everything = [POOL.address(i) for i in range(POOL.size)]
    with pytest.raises(addresses.AddressPoolExhaustedError):
        POOL.allocate(app="p", service="s", taken=everything)
    last_free = everything.pop(12345)
    assert POOL.allocate(app="p", service="s", taken=everything) == last_free


def test_same_service_in_different_projects_gets_different_first_candidates():
    firsts = {POOL.first_candidate(app=f"project{i}", service="p-aggregator")
              for i in range(200)}
    assert len(firsts) > 190


@settings(max_examples=1000, deadline=None)
@given(project=flops_names, service=flops_names, role=st.text(max_size=40))
def test_oakestra_names_are_valid_and_deterministic(project, service, role):
    app_name = names.application_name(project)
    ms_name = names.microservice_name(service, app_key=project)
    for value in (app_name, ms_name, names.namespace_for(role)):
        assert names.OAKESTRA_NAME.fullmatch(value), value
    assert ms_name == names.microservice_name(service, app_key=project)


@settings(max_examples=500, deadline=None)
@given(pair=st.lists(flops_names, min_size=2, max_size=2, unique=True))
def test_distinct_flops_names_give_distinct_oakestra_names(pair):
    a, b = pair
    assert names.microservice_name(a, app_key="p") != names.microservice_name(b, app_key="p")
    assert names.application_name(a) != names.application_name(b)


def test_hierarchical_names_stay_readable():
    name = names.microservice_name("proj42-cluster-aggregator-clusterA", app_key="proj42")
    assert name.startswith("clusteraggregatorclu")
    assert len(name) == 30


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a/b", "ä", "x" * 129, "a\nb", "a;b"])
def test_bad_names_are_refused(bad):
    with pytest.raises(InvalidSpecError, match="invalid"):
        names.application_name(bad)
    with pytest.raises(InvalidSpecError):
        names.microservice_name(bad, app_key="p")


def test_default_pool_is_unchanged():
    pool = addresses.AddressPool()
    assert pool.size == POOL.size == 128 * 254
    assert [pool.address(i) for i in (0, 253, 254, pool.size - 1)] == [
        "10.30.128.1", "10.30.128.254", "10.30.129.1", "10.30.255.254"]
    assert pool.allocate(app="p", service="s", taken=[]) == POOL.allocate(
        app="p", service="s", taken=[])


@pytest.mark.parametrize(("subnet", "first", "last"), [
    ("127.30.0.0/16", "127.30.128.1", "127.30.255.254"),
    ("10.19.0.0/20", "10.19.8.1", "10.19.15.254"),
    ("127.0.0.0/8", "127.128.0.1", "127.255.255.254"),
])
def test_configured_subnets(subnet, first, last):
    pool = addresses.AddressPool(subnet)
    assert pool.address(0) == first and pool.address(pool.size - 1) == last
    values = pool.allocate_many(app="proj", services=[f"proj-s{i}" for i in range(50)])
    assert len(set(values.values())) == 50
    assert all(pool.contains(v) for v in values.values())
    assert not pool.contains("10.30.200.1") and not pool.contains(first.rsplit(".", 1)[0] + ".0")
    assert not POOL.contains(first)


@pytest.mark.parametrize("bad", ["10.30.0.0/24", "10.30.0.0/7", "10.30.0.1/16", "fd00::/16",
                                 "nonsense"])
def test_bad_subnets_are_refused(bad):
    with pytest.raises(ValueError):
        addresses.AddressPool(bad)
