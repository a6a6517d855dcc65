"""Who may do what on the message bus: one NATS user per service, and the server's
authorization block made from it.

Whoever can publish a `health_records.status.changed.v1` decides who passes a gate, so a
service may publish only its own subjects, declare only its own streams and read only the
streams it follows or consumes; replies come to an inbox prefix of its own
(`_INBOX.<user>`), which no other user may subscribe to. The `operator` user has every right,
for operators' tools and the tests. The local run and the test servers are configured from
`server_config`; deploy/nats/ holds the same rules for containers (with passwords taken from
the environment), and a test checks that the two agree.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass

OPERATOR = "operator"


@dataclass(frozen=True)
class Account:
    """What one service does on the bus."""

    publishes: tuple[str, ...] = ()  # subjects it publishes (its events)
    declares: tuple[str, ...] = ()  # streams it creates and updates at start
    follows: tuple[str, ...] = ()  # streams it reads with ephemeral push consumers (no acks)
    consumes: tuple[str, ...] = ()  # streams it reads with durable pull consumers (acks)


ACCOUNTS: dict[str, Account] = {
    "issuer": Account(publishes=("issuer.>",), declares=("ISSUER",)),
    "health-records": Account(publishes=("health_records.>",), declares=("HEALTH",)),
    "venue-admin": Account(
        publishes=("venue_admin.>", "dead_letter.venue_admin.>"),
        declares=("VENUES", "ACCESS", "DEAD_LETTERS"),
        consumes=("ACCESS", "DEAD_LETTERS"),
    ),
    "verifier": Account(
        publishes=("verifier.access_record.>",),
        declares=("ACCESS",),
        follows=("ISSUER", "VENUES", "HEALTH"),
    ),
}

USERS: tuple[str, ...] = (*ACCOUNTS, OPERATOR)


def inbox_prefix(user: str) -> str:
    return f"_INBOX.{user}"


def permissions(user: str) -> dict[str, dict[str, list[str]]]:
    """The NATS permissions of `user`: subjects it may publish and subscribe to."""
    if user == OPERATOR:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    account = ACCOUNTS[user]
    api = "$JS.API"
    publish = [*account.publishes, f"{api}.INFO"]
    for stream in account.declares:
        publish += [f"{api}.STREAM.{op}.{stream}" for op in ("CREATE", "UPDATE", "INFO")]
    for stream in account.follows:
        publish += [
            f"{api}.STREAM.INFO.{stream}",
            f"{api}.CONSUMER.CREATE.{stream}",
            f"{api}.CONSUMER.CREATE.{stream}.>",
            f"{api}.CONSUMER.INFO.{stream}.>",
            f"{api}.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>",  # flow-control replies of a push consumer
        ]
    for stream in account.consumes:
        publish += [
            f"{api}.STREAM.INFO.{stream}",
            f"{api}.CONSUMER.CREATE.{stream}",
            f"{api}.CONSUMER.CREATE.{stream}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{stream}.>",
            f"{api}.CONSUMER.INFO.{stream}.>",
            f"{api}.CONSUMER.DELETE.{stream}.>",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.>",
            f"$JS.ACK.{stream}.>",
        ]
    return {
        "publish": {"allow": list(dict.fromkeys(publish))},
        "subscribe": {"allow": [inbox_prefix(user) + ".>"]},
    }


def _value(value: object) -> str:
    """A value in the server's configuration syntax; `$NAME` stays a variable reference."""
    if isinstance(value, str) and value.startswith("$") and value[1:].isidentifier():
        return value
    return json.dumps(value)


def authorization_block(passwords: Mapping[str, str]) -> str:
    """The server's `authorization` block: every user of `USERS` with its password (a secret,
    or `$VARIABLE` to take it from the server's environment) and permissions."""
    lines = ["authorization {", "  users: ["]
    for user in USERS:
        rights = permissions(user)
        lines.append(
            f"    {{user: {_value(user)}, password: {_value(passwords[user])}, permissions: "
            f"{{publish: {json.dumps(rights['publish'])}, "
            f"subscribe: {json.dumps(rights['subscribe'])}}}}}"
        )
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def server_config(
    host: str,
    port: int,
    store_dir: str,
    passwords: Mapping[str, str],
    max_file_store: str | None = None,
) -> str:
    """A whole single-server configuration with JetStream and these users. JetStream reserves
    each stream's `max_bytes` against `max_file_store` (by default 75 % of the free disk)."""
    jetstream = f"  store_dir: {_value(store_dir)}\n"
    if max_file_store:
        jetstream += f"  max_file_store: {max_file_store}\n"
    return (
        f"host: {_value(host)}\nport: {port}\njetstream {{\n{jetstream}}}\n"
        + authorization_block(passwords)
    )


def deployed_config() -> str:
    """deploy/nats/nats.conf: the server of the containers, each password read from the
    server's environment (`$NATS_PASSWORD_<USER>`)."""
    header = (
        "# Generated by `python -m hc_common.events.accounts` from hc_common.events.accounts:\n"
        "# edit that module, not this file. Each password comes from the server's environment.\n"
    )
    passwords = {user: password_variable(user) for user in USERS}
    return header + server_config("0.0.0.0", 4222, "/data", passwords)


def password_variable(user: str) -> str:
    """The environment variable a deployed server reads `user`'s password from."""
    return "$NATS_PASSWORD_" + user.upper().replace("-", "_")


if __name__ == "__main__":
    print(deployed_config(), end="")
