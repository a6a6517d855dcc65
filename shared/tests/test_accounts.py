"""The bus's users and rights: each stream's events have one publisher, the containers'
server configuration is the one the code generates, and nats-server accepts it."""

import os
import subprocess
from pathlib import Path

from hc_common.devstack import ROOT, nats_server_binary
from hc_common.events.accounts import (
    ACCOUNTS,
    OPERATOR,
    USERS,
    deployed_config,
    password_variable,
    permissions,
)
from hc_common.events.envelope import STREAMS


def publishers(subject: str) -> list[str]:
    """The users allowed to publish `subject` (`>` and `*` wildcards as NATS reads them)."""

    def matches(pattern: str) -> bool:
        want, have = pattern.split("."), subject.split(".")
        for i, token in enumerate(want):
            if token == ">":
                return len(have) > i
            if i >= len(have) or token not in ("*", have[i]):
                return False
        return len(want) == len(have)

    return [u for u in USERS if any(matches(p) for p in permissions(u)["publish"]["allow"])]


def test_each_event_has_one_publisher_besides_the_operator() -> None:
    owners = {
        "health_records.status.changed.v1": "health-records",
        "venue_admin.member.changed.v1": "venue-admin",
        "venue_admin.rule.changed.v1": "venue-admin",
        "issuer.credential.revoked.v1": "issuer",
        "verifier.access_record.created.v1": "verifier",
        "verifier.access_record.batch.v1": "verifier",
        "dead_letter.venue_admin.access-records": "venue-admin",
    }
    for subject, owner in owners.items():
        assert publishers(subject) == [owner, OPERATOR], subject
    # Nobody but the operator may touch the streams' administration beyond its own.
    for user in ACCOUNTS:
        allowed = permissions(user)["publish"]["allow"]
        assert not any(".DELETE." in p and "STREAM" in p for p in allowed), user
        assert not any("PURGE" in p or "MSG.DELETE" in p for p in allowed), user
        assert permissions(user)["subscribe"]["allow"] == [f"_INBOX.{user}.>"]


def test_every_declared_stream_has_an_owner() -> None:
    declared = {stream for account in ACCOUNTS.values() for stream in account.declares}
    assert declared == set(STREAMS)


def test_the_deployed_configuration_is_generated_and_valid(tmp_path: Path) -> None:
    deployed = ROOT / "deploy" / "nats" / "nats.conf"
    assert deployed.read_text() == deployed_config(), (
        "deploy/nats/nats.conf is stale: python -m hc_common.events.accounts > it"
    )
    env = {**os.environ} | {password_variable(u)[1:]: f"secret-{u}" for u in USERS}
    checked = subprocess.run(
        [nats_server_binary(), "-c", str(deployed), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Without the passwords in its environment, the server refuses to start.
    missing = subprocess.run(
        [nats_server_binary(), "-c", str(deployed), "-t"],
        env={k: v for k, v in os.environ.items() if not k.startswith("NATS_PASSWORD_")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode != 0
