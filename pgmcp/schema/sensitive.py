"""Columns whose names look sensitive or tenant-like: what `pgmcp init` proposes to hide or filter.

A name is split into words (`card_last4` -> card, last, 4; `passwordHash` -> password, hash)
and the words are matched against one table of patterns, each with the reason written next
to the rule it produces. Whole words only, so `business` is not `sin` and `payment_id` is not
`pay`. This is a first draft for a person to review, never a guarantee: a column called `notes`
may hold anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgmcp.schema.snapshot import RelationInfo, SchemaSnapshot

# (words that must appear in order, why the column is hidden); the first match wins.
SENSITIVE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("password",), "a password or its hash"),
    (("passwd",), "a password or its hash"),
    (("pwd",), "a password or its hash"),
    (("pass", "hash"), "a password hash"),
    (("secret",), "a secret"),
    (("token",), "a token (access, session or reset)"),
    (("api", "key"), "an API key"),
    (("apikey",), "an API key"),
    (("private", "key"), "a private key"),
    (("access", "key"), "an access key"),
    (("ssn",), "a social security number"),
    (("social", "security"), "a social security number"),
    (("national", "id"), "a national identity number"),
    (("tax", "id"), "a tax identification number"),
    (("passport",), "a passport number"),
    (("iban",), "a bank account number (IBAN)"),
    (("account", "number"), "a bank account number"),
    (("routing", "number"), "a bank routing number"),
    (("card",), "payment card data"),
    (("cvv",), "a card security code"),
    (("cvc",), "a card security code"),
    (("salary",), "pay"),
    (("wage",), "pay"),
    (("wages",), "pay"),
    (("compensation",), "pay"),
    (("income",), "income"),
    (("email",), "an e-mail address (personal data)"),
    (("e", "mail"), "an e-mail address (personal data)"),
    (("phone",), "a phone number (personal data)"),
    (("mobile",), "a phone number (personal data)"),
    (("fax",), "a fax number (personal data)"),
    (("birth",), "a date of birth (personal data)"),
    (("birthday",), "a date of birth (personal data)"),
    (("dob",), "a date of birth (personal data)"),
    (("address",), "an address (personal data)"),
    (("street",), "a street address (personal data)"),
)
# Columns that usually say whose row it is, in multi-tenant schemas, most telling first.
TENANT_KEYS = ("tenant", "org", "organization", "organisation", "account", "company", "workspace", "team",
               "client", "customer", "store", "shop")
TENANT = re.compile(rf"^({'|'.join(TENANT_KEYS)})_?id$")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def words(name: str) -> tuple[str, ...]:
    """The words of a column name, lower case: `card_last4` -> (card, last, 4)."""
    return tuple(w.lower() for w in _WORD.findall(name))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    return any(haystack[i:i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def sensitive_reason(column: str) -> str | None:
    """Why a column of this name looks sensitive, or None."""
    found = words(column)
    for needle, reason in SENSITIVE:
        if _contains(found, needle):
            return reason
    return None


@dataclass(frozen=True)
class Finding:
    relation: RelationInfo
    column: str
    reason: str


def sensitive_columns(snapshot: SchemaSnapshot) -> list[Finding]:
    """Every column of every relation whose name looks sensitive, in snapshot order."""
    out = []
    for rel in snapshot.relations:
        for col in rel.columns:
            reason = sensitive_reason(col.name)
            if reason is not None:
                out.append(Finding(rel, col.name, reason))
    return out


def tenant_columns(snapshot: SchemaSnapshot) -> list[Finding]:
    """The most telling tenant-like column of each table (not views: a row filter fences a table)."""
    out = []
    for rel in snapshot.relations:
        if rel.kind not in ("table", "partitioned_table"):
            continue
        keys = [(TENANT_KEYS.index(m.group(1)), c.name) for c in rel.columns if (m := TENANT.match(c.name.lower()))]
        if keys:
            column = min(keys)[1]
            out.append(Finding(rel, column, f"{column} looks like a tenant key"))
    return out
