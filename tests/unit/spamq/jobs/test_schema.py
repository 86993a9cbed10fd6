"""spamq/jobs/schema.py: keys come only from checked ids, scripts carry the Python statuses."""

import re

import pytest

from spamq.jobs import schema

SCRIPTS = ["STORE_CHUNK", "FAIL", "CANCEL", "RESUME", "ADVANCE", "START", "ADMISSION",
           "OUTPUT_DONE", "RENEW", "RELEASE", "SPLIT_DONE"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_its_placeholders_filled(name):
    script = getattr(schema, name)
    assert "$" not in script
    # every status a script names in quotes is one of the Python constants
    statuses = {schema.QUEUED, schema.RUNNING, *schema.ENDED}
    named = set(re.findall(r"HSET', [^,]+, 'status', '(\w+)'", script))
    named |= set(re.findall(r"'status'\) [=~]= '(\w+)'", script))
    assert named <= statuses


def test_the_status_sets_follow_the_constants():
    assert schema.lua("'$DONE' '$EXPIRED' '$STATS_KEY'") == f"'done' 'expired' '{schema.STATS_KEY}'"
    assert "local ENDED = {['done'] = true, ['failed'] = true, ['cancelled'] = true, " \
           "['expired'] = true}" in schema.FAIL
    assert "local RESUMABLE = {['failed'] = true, ['cancelled'] = true, ['expired'] = true}" \
        in schema.RESUME


@pytest.mark.parametrize("bad", ["", "A" * 32, "a" * 31, "a" * 33, "../" + "a" * 29, None, 7,
                                 "a" * 32 + "\n", "a" * 31 + ":"])
def test_no_key_is_built_from_an_unchecked_id(bad):
    with pytest.raises(schema.JobNotFound):
        schema.job_key(bad)
    with pytest.raises(schema.JobNotFound):
        schema.lease_key(bad, 0)


def test_keys_of_a_job():
    jid = "0123456789abcdef" * 2
    assert schema.job_keys(jid) == (f"spamq:job:{jid}", f"spamq:job:{jid}:texts",
                                    f"spamq:job:{jid}:results", f"spamq:job:{jid}:finished")
    assert schema.lease_key(jid, 3) == f"spamq:lease:{jid}:3"
    assert schema.idem_key("k", "x") == "spamq:idem:" + schema.digest("k", "x")
    assert schema.output_key("out/a") == "spamq:output:" + schema.digest("out/a")
    assert schema.owner_key(None) == "spamq:owner:-:jobs"
