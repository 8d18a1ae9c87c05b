"""RFC 5805 transactions: several updates of several entries, all applied or none."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ldap.controls import RequestControl
from ldap.extop import ExtendedRequest

from scimhost_ldap.connection import Connection

START_TXN = "1.3.6.1.1.21.1"
TXN_SPEC = "1.3.6.1.1.21.2"
END_TXN = "1.3.6.1.1.21.3"

# An update: given the connection and the controls to send, it sends one operation and returns
# its message id.
Update = Callable[..., int]


async def in_transaction(connection: Connection, updates: list[Update]) -> None:
    """Apply `updates` in one transaction on `connection` (which must be the caller's alone).
    Raises the LDAP error of the update that failed, none of them applied."""
    answer = await connection.call(lambda raw: raw.extop(ExtendedRequest(START_TXN, None)))
    txn_id = answer.value or b""
    spec = RequestControl(TXN_SPEC, True, txn_id)
    try:
        for update in updates:
            await connection.call(functools.partial(update, ctrls=[spec]))
    except BaseException:
        await connection.call(lambda raw: raw.extop(ExtendedRequest(END_TXN, _end(txn_id, commit=False))))
        raise
    await connection.call(lambda raw: raw.extop(ExtendedRequest(END_TXN, _end(txn_id, commit=True))))


def _end(txn_id: bytes, *, commit: bool) -> bytes:
    """txnEndReq ::= SEQUENCE { commit BOOLEAN DEFAULT TRUE, identifier OCTET STRING } (BER)."""
    body = (b"" if commit else b"\x01\x01\x00") + b"\x04" + _length(len(txn_id)) + txn_id
    return b"\x30" + _length(len(body)) + body


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets
