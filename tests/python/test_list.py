"""ListSecrets filters, sorting and pagination; tags (reference sections 3.8 and 3.11).

Every test works inside its own unique name prefix, ANDed into the filters, so
the secrets other tests create on the shared server never interfere."""

import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import MSG_NOT_FOUND, raises_aws


@pytest.fixture
def prefix():
    # Letters then digits only, so that none of its words starts with a letter the
    # word-matching tests below search for.
    return "ls" + str(uuid.uuid4().int)[:12]


def listed(sm, prefix, filters=(), **kw):
    """All names matching `filters` AND name-prefix `prefix`, following NextToken."""
    kwargs = {"Filters": [{"Key": "name", "Values": [prefix]}, *filters], **kw}
    names = []
    for _ in range(100):
        page = sm.list_secrets(**kwargs)
        names += [s["Name"] for s in page["SecretList"]]
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]
    raise AssertionError("pagination did not end")


def f(key, *values):
    return {"Key": key, "Values": list(values)}


# ---------------------------------------------------------------- name


def test_name_prefix_is_case_sensitive(sm, prefix):
    a, b, c = f"{prefix}/app/One", f"{prefix}/app/two", f"{prefix}/db/three"
    for n in (a, b, c):
        sm.create_secret(Name=n, SecretString="v")
    assert sorted(listed(sm, prefix)) == sorted([a, b, c])
    assert sorted(listed(sm, prefix, [f("name", f"{prefix}/app")])) == sorted([a, b])
    assert listed(sm, prefix, [f("name", f"{prefix}/app/O")]) == [a]
    assert listed(sm, prefix, [f("name", f"{prefix}/app/o")]) == []
    assert listed(sm, prefix.upper()) == []
    # Prefix, not substring.
    assert listed(sm, prefix, [f("name", "app")]) == []


def test_name_values_are_ored_and_filters_anded(sm, prefix):
    a, b, c = f"{prefix}/alpha", f"{prefix}/beta", f"{prefix}/gamma"
    for n in (a, b, c):
        sm.create_secret(Name=n, SecretString="v")
    assert sorted(listed(sm, prefix, [f("name", f"{prefix}/al", f"{prefix}/be")])) == sorted([a, b])
    # Two filters with the same key are ANDed [aws-verified test_with_duplicate_filter_keys].
    assert listed(sm, prefix, [f("name", f"{prefix}/al"), f("name", f"{prefix}/be")]) == []


def test_name_negation(sm, prefix):
    a, b, c = f"{prefix}/alpha", f"{prefix}/beta", f"{prefix}/gamma"
    for n in (a, b, c):
        sm.create_secret(Name=n, SecretString="v")
    assert sorted(listed(sm, prefix, [f("name", f"!{prefix}/al")])) == sorted([b, c])
    assert listed(sm, prefix, [f("name", f"!{prefix}/al"), f("name", f"!{prefix}/be")]) == [c]


# ---------------------------------------------------------------- tags as filters


def test_tag_key_and_tag_value_filters(sm, prefix):
    k = "Key" + prefix
    sm.create_secret(Name=f"{prefix}/foo", SecretString="v", Tags=[{"Key": k, "Value": "right"}])
    sm.create_secret(Name=f"{prefix}/bar", SecretString="v", Tags=[{"Key": k, "Value": "wrong"}])
    sm.create_secret(Name=f"{prefix}/baz", SecretString="v", Tags=[{"Key": "other", "Value": "right"}])
    sm.create_secret(Name=f"{prefix}/qux", SecretString="v")
    assert sorted(listed(sm, prefix, [f("tag-key", k)])) == [f"{prefix}/bar", f"{prefix}/foo"]
    assert sorted(listed(sm, prefix, [f("tag-key", k[:5])])) == [f"{prefix}/bar", f"{prefix}/foo"]  # prefix match
    assert listed(sm, prefix, [f("tag-key", k.lower())]) == []  # case-sensitive
    assert sorted(listed(sm, prefix, [f("tag-value", "right")])) == [f"{prefix}/baz", f"{prefix}/foo"]
    assert listed(sm, prefix, [f("tag-value", "Right")]) == []
    # [aws-verified test_with_multiple_filters]: filters are ANDed.
    assert listed(sm, prefix, [f("tag-key", k), f("tag-value", "right")]) == [f"{prefix}/foo"]
    assert sorted(listed(sm, prefix, [f("tag-key", "!" + k)])) == [f"{prefix}/baz", f"{prefix}/qux"]


# ---------------------------------------------------------------- description (word matching)


@pytest.fixture
def described(sm, prefix):
    descs = {
        "foo": "one two",
        "bar": "one and two",
        "baz": "one",
        "qux": "two",
        "none": "unrelated",
    }
    for n, d in descs.items():
        sm.create_secret(Name=f"{prefix}/{n}", SecretString="v", Description=d)
    sm.create_secret(Name=f"{prefix}/nodesc", SecretString="v")
    return lambda *names: sorted(f"{prefix}/{n}" for n in names)


def test_description_single_word(sm, prefix, described):
    assert sorted(listed(sm, prefix, [f("description", "one")])) == described("foo", "bar", "baz")
    # Word prefix, case-insensitive [old user guide; aws-verified word matching].
    assert sorted(listed(sm, prefix, [f("description", "ONE")])) == described("foo", "bar", "baz")
    assert sorted(listed(sm, prefix, [f("description", "t")])) == described("foo", "bar", "qux")
    assert sorted(listed(sm, prefix, [f("description", "related")])) == []


def test_description_value_with_several_words(sm, prefix, described):
    # [aws-verified test_with_filter_with_value_with_multiple_words]
    assert sorted(listed(sm, prefix, [f("description", "one two")])) == described("foo", "bar")
    assert sorted(listed(sm, prefix, [f("description", "o t")])) == described("foo", "bar")


def test_description_duplicate_filters_are_anded(sm, prefix, described):
    got = sorted(listed(sm, prefix, [f("description", "one"), f("description", "two")]))
    assert got == described("foo", "bar")


def test_description_negation(sm, prefix, described):
    # moto test_with_filter_with_negation (not AWS-verified). How a negated value
    # combines with plain values in the same filter is unverified, so only a
    # negation on its own is asserted here.
    got = sorted(listed(sm, prefix, [f("description", "!o")]))
    assert set(described("qux", "none")) <= set(got)
    assert not set(described("foo", "bar", "baz")) & set(got)
    got = sorted(listed(sm, prefix, [f("description", "!two")]))
    assert set(described("baz", "none")) <= set(got)
    assert not set(described("foo", "bar", "qux")) & set(got)


# ---------------------------------------------------------------- all


def test_all_searches_every_attribute(sm, prefix):
    word = "zq" + uuid.uuid4().hex[:8]
    sm.create_secret(Name=f"{prefix}/{word}", SecretString="v")
    sm.create_secret(Name=f"{prefix}/bar", SecretString="v", Description=word)
    sm.create_secret(Name=f"{prefix}/baz", SecretString="v", Tags=[{"Key": word, "Value": "1"}])
    sm.create_secret(Name=f"{prefix}/qux", SecretString="v", Tags=[{"Key": "1", "Value": word}])
    sm.create_secret(Name=f"{prefix}/none", SecretString="v")
    got = sorted(listed(sm, prefix, [f("all", word)]))
    assert got == sorted(f"{prefix}/{n}" for n in (word, "bar", "baz", "qux"))


def test_all_word_prefix_matching(sm, prefix):
    # [aws-verified moto test_with_all_filter]
    u = str(uuid.uuid4().int)[:6]
    first = f"{prefix}/SecretOne{u}"
    second = f"{prefix}/SecretTwo{u}"
    third = f"{prefix}/Thirdsecret{u}"
    tag_key = f"{prefix}/SecretFTag{u}"
    tag_val = f"{prefix}/SecretFValue{u}"
    none = f"{prefix}/none{u}"
    sm.create_secret(Name=first, SecretString="s")
    sm.create_secret(Name=second, SecretString="s", Description="DescTwo")
    sm.create_secret(Name=third, SecretString="s")
    sm.create_secret(Name=tag_key, SecretString="s", Tags=[{"Key": "1", "Value": "foo"}])
    sm.create_secret(Name=tag_val, SecretString="s", Tags=[{"Key": "foo", "Value": "v"}])
    sm.create_secret(Name=none, SecretString="s")

    def all_(v):
        return sorted(listed(sm, prefix, [f("all", v)]))

    assert all_("SecretOne") == [first]
    assert all_("foo") == sorted([tag_key, tag_val])
    assert all_("Secret") == sorted([first, second, tag_key, tag_val])
    assert all_("secret") == sorted([first, second, tag_key, tag_val])
    assert all_("sec") == sorted([first, second, tag_key, tag_val])
    assert all_("ret") == []
    assert all_("SomeSecret") == []
    assert all_("d") == [second]
    assert all_("d t") == [second]
    assert all_("t") == sorted([second, third, tag_key])


@pytest.fixture
def tokenised(sm, prefix):
    # [aws-verified moto test_with_all_filter_special_characters]. Each name uses a
    # single kind of separator: AWS never found a name that mixes two (prod-AppBeta/x).
    betas = [f"{prefix}{sep}prod{sep}AppBeta{sep}x" for sep in "/_+=.@-"]
    company = f"{prefix}/uat/COMPANY/x"
    things = f"{prefix}/uat/COMPANYthings/x"
    for n in betas + [company, things]:
        sm.create_secret(Name=n, SecretString="v")

    def all_(*v):
        return sorted(listed(sm, prefix, [f("all", *v)]))

    return all_, betas, company, things


def test_all_tokenisation(tokenised):
    all_, betas, company, things = tokenised
    assert all_("AppBeta") == sorted(betas)
    assert all_("Beta") == sorted(betas)
    assert all_("AppBeta", "prod") == sorted(betas)
    assert all_("+") == []
    assert all_("things") == []
    assert all_("Ythings") == [things]  # split as COMPAN + Ythings
    assert all_("N") == []
    assert all_("pany") == []


def test_all_does_not_match_across_case_split(tokenised):
    all_, betas, company, things = tokenised
    assert all_("company") == [company]


# ---------------------------------------------------------------- sort and pagination


def test_sort_by_name(sm, prefix):
    names = [f"{prefix}/b", f"{prefix}/a", f"{prefix}/c", f"{prefix}/B"]
    for n in names:
        sm.create_secret(Name=n, SecretString="v")
    assert listed(sm, prefix, SortBy="name", SortOrder="asc") == sorted(names)
    assert listed(sm, prefix, SortBy="name", SortOrder="desc") == sorted(names, reverse=True)


def test_sort_by_created_date(sm, prefix):
    names = [f"{prefix}/{c}" for c in "cab"]
    for n in names:
        sm.create_secret(Name=n, SecretString="v")
    assert listed(sm, prefix, SortBy="created-date", SortOrder="asc") == names
    assert listed(sm, prefix, SortBy="created-date", SortOrder="desc") == names[::-1]


@pytest.mark.parametrize("sort", [{}, {"SortBy": "name", "SortOrder": "desc"}])
def test_pagination_visits_each_secret_once(sm, prefix, sort):
    names = [f"{prefix}/s{i}" for i in range(5)]
    for n in names:
        sm.create_secret(Name=n, SecretString="v")
    kwargs = {"Filters": [f("name", prefix)], "MaxResults": 2, **sort}
    seen, pages = [], 0
    while True:
        page = sm.list_secrets(**kwargs)
        pages += 1
        assert len(page["SecretList"]) <= 2
        seen += [s["Name"] for s in page["SecretList"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
        assert pages < 20
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen)) == 5
    assert pages >= 3
    if sort:
        assert seen == sorted(names, reverse=True)


def test_list_entry_contents(sm, prefix):
    n = f"{prefix}/entry"
    created = sm.create_secret(Name=n, SecretString="hidden-value", Description="d", Tags=[{"Key": "k", "Value": "v"}])
    sm.create_secret(Name=f"{prefix}/empty")
    entries = {s["Name"]: s for s in sm.list_secrets(Filters=[f("name", prefix)])["SecretList"]}
    e = entries[n]
    assert e["ARN"] == created["ARN"]
    assert e["Description"] == "d"
    assert e["Tags"] == [{"Key": "k", "Value": "v"}]
    assert e["SecretVersionsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert "SecretString" not in e and "hidden-value" not in repr(e)
    assert "KmsKeyId" not in e  # omitted for the default key
    assert "SecretVersionsToStages" not in entries[f"{prefix}/empty"]


def test_garbage_next_token(sm):
    with raises_aws("InvalidNextTokenException"):
        sm.list_secrets(NextToken="this-is-not-a-token")


def test_invalid_filter_key_is_validation_exception(sm):
    # moto copy of the coral text: "1 validation error detected: Value 'invalid' at
    # 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [...]"
    with raises_aws("ValidationException") as err:
        sm.list_secrets(Filters=[{"Key": "invalid", "Values": ["foo"]}])
    assert "invalid" in err.message


def test_missing_filter_key_is_invalid_parameter(sm_novalidate):
    # moto: InvalidParameterException "Invalid filter key" (unverified)
    with raises_aws("InvalidParameterException"):
        sm_novalidate.list_secrets(Filters=[{"Values": ["foo"]}])


# ---------------------------------------------------------------- tags


def tags_of(sm, name):
    return sm.describe_secret(SecretId=name).get("Tags")


def test_tag_merge_overwrite_and_untag(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    # Never tagged: no Tags member at all [aws-snap test_secret_tags].
    assert "Tags" not in sm.describe_secret(SecretId=name)
    r = sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    assert {k: v for k, v in r.items() if k != "ResponseMetadata"} == {}
    sm.tag_resource(SecretId=name, Tags=[{"Key": "b", "Value": "two"}, {"Key": "c", "Value": ""}])
    assert sorted(tags_of(sm, name), key=lambda t: t["Key"]) == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "two"},
        {"Key": "c", "Value": ""},
    ]
    # Keys are case-sensitive.
    sm.tag_resource(SecretId=name, Tags=[{"Key": "A", "Value": "upper"}])
    assert len(tags_of(sm, name)) == 4
    sm.untag_resource(SecretId=name, TagKeys=["A", "b", "does-not-exist"])
    sm.untag_resource(SecretId=name, TagKeys=["b"])  # idempotent
    assert sorted(tags_of(sm, name), key=lambda t: t["Key"]) == [{"Key": "a", "Value": "1"}, {"Key": "c", "Value": ""}]
    sm.untag_resource(SecretId=name, TagKeys=["a", "c"])
    # After removing every tag AWS returns an empty list [aws-snap test_secret_tags].
    assert sm.describe_secret(SecretId=name)["Tags"] == []


def test_tags_on_create_and_in_list(sm, name):
    sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "env", "Value": "prod"}])
    assert tags_of(sm, name) == [{"Key": "env", "Value": "prod"}]
    entry = [s for s in sm.list_secrets(Filters=[f("name", name)])["SecretList"] if s["Name"] == name][0]
    assert entry["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_tag_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.tag_resource(SecretId=name, Tags=[{"Key": "a", "Value": "1"}])
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.untag_resource(SecretId=name, TagKeys=["a"])


def _assert_rejected(call):
    # The reserved aws: prefix is documented; the exact code is not: accept the two
    # parameter-error codes AWS uses, but it must be a client error, never a 500.
    with pytest.raises(ClientError) as ei:
        call()
    code = ei.value.response["Error"]["Code"]
    assert code in ("InvalidParameterException", "ValidationException"), code
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_aws_prefixed_tag_keys_are_rejected(sm, name):
    sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "mine", "Value": "1"}])
    _assert_rejected(lambda: sm.tag_resource(SecretId=name, Tags=[{"Key": "aws:owner", "Value": "me"}]))
    _assert_rejected(lambda: sm.untag_resource(SecretId=name, TagKeys=["aws:secretsmanager:owningService"]))
    assert tags_of(sm, name) == [{"Key": "mine", "Value": "1"}]


def test_aws_prefixed_tag_keys_rejected_on_create(sm, name):
    _assert_rejected(lambda: sm.create_secret(Name=name, SecretString="v", Tags=[{"Key": "aws:x", "Value": "1"}]))
    with raises_aws("ResourceNotFoundException"):
        sm.describe_secret(SecretId=name)
