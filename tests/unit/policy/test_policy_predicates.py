from fermion.policy.predicates import (
    FALSE,
    TRUE,
    And,
    Const,
    Cred,
    CredEq,
    Eq,
    Match,
    Not,
    Or,
    all_of,
    any_of,
    negate,
    simplify,
)

OWN = Eq("project_id", Cred("project_id"))
SHARED = Eq("shared", True)
DEV = Match("device_owner", "^network:")


def test_constants():
    assert TRUE == Const(True)
    assert FALSE == Const(False)
    assert TRUE.evaluate({}, {}) and not FALSE.evaluate({}, {})


def test_and_folding():
    assert all_of([OWN, FALSE, SHARED]) == FALSE
    assert all_of([TRUE, OWN]) == OWN
    assert all_of([]) == TRUE
    assert all_of([OWN, OWN]) == OWN
    assert all_of([OWN, And((SHARED, DEV))]) == And((OWN, SHARED, DEV))


def test_or_folding():
    assert any_of([OWN, TRUE]) == TRUE
    assert any_of([FALSE, OWN]) == OWN
    assert any_of([]) == FALSE
    assert any_of([OWN, Or((SHARED, OWN))]) == Or((OWN, SHARED))


def test_not_folding():
    assert negate(TRUE) == FALSE
    assert negate(FALSE) == TRUE
    assert negate(Not(OWN)) == OWN
    assert negate(OWN) == Not(OWN)


def test_simplify_raw_tree():
    raw = Or((And((TRUE, OWN)), Not(Not(SHARED)), And((FALSE, DEV))))
    assert simplify(raw) == Or((OWN, SHARED))


def test_evaluate():
    creds = {"project_id": "p1", "roles": []}
    assert OWN.evaluate({"project_id": "p1"}, creds)
    assert OWN.evaluate({"tenant_id": "p1"}, creds)
    assert not OWN.evaluate({"project_id": "p2"}, creds)
    assert not OWN.evaluate({}, creds)
    assert not OWN.evaluate({"project_id": None}, {"project_id": None})
    assert DEV.evaluate({"device_owner": "network:router_interface"}, creds)
    assert not DEV.evaluate({}, creds)
    assert Not(DEV).evaluate({}, creds)
    assert Or((OWN, SHARED)).evaluate({"project_id": "p2", "shared": True}, creds)
    assert not And((OWN, SHARED)).evaluate({"project_id": "p2", "shared": True}, creds)
    assert CredEq("user_id", "u1").evaluate({}, {"user_id": "u1"})


def test_bind_replaces_credentials():
    creds = {"project_id": "p1", "user_id": "u1"}
    pred = Or((OWN, SHARED, And((CredEq("user_id", "u1"), DEV))))
    assert pred.bind(creds) == Or((Eq("project_id", "p1"), SHARED, DEV))
    assert Eq("network:project_id", Cred("project_id")).bind({"tenant_id": "p9"}) == Eq(
        "network:project_id", "p9"
    )
    # No project: ownership can never match, so it folds away.
    assert Or((OWN, SHARED)).bind({"project_id": None}) == SHARED
    assert Not(CredEq("user_id", "u2")).bind(creds) == TRUE


def test_predicates_are_hashable():
    assert len({OWN, Eq("project_id", Cred("project_id")), SHARED}) == 2
