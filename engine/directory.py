"""Directory logins beside local accounts: LDAP (a simple bind as the user) and OpenID Connect.

Nothing about a directory is kept in the schema. A directory user is an ordinary ``users`` row
whose password hash can never verify: ``!ldap``, or ``!oidc:`` and a digest of the provider and
the subject. So a local password never opens it, and a directory login never takes over a local
account (or another provider's user) that happens to have the same username.

The administrator's role map (a directory group or claim value → a role key) names the roles the
directory manages: at every directory login those roles are replaced by the ones the user's
groups map to now. Roles given by hand that the map does not name stay.

The settings come from ``DEPTFLOW_LDAP_*``, ``DEPTFLOW_OIDC_*`` and ``DEPTFLOW_DIRECTORY_*``
environment variables (:func:`settings_from_environ`); the browser leg of OpenID Connect is
in ``web/sso.py``, the claims it brings back are turned into a user here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, users
from .db import Role, User
from .errors import DirectoryUnavailable
from .vocabulary import EventKind

log = logging.getLogger("deptflow.directory")

LDAP_IDENTITY = "!ldap"
#: LDAP result codes that mean "these credentials do not open this entry" (not "the directory is down")
_REFUSED = {32, 48, 49, 50, 53}


class DirectoryMisconfigured(ValueError):
    """A directory variable is missing or malformed; start-up stops with this message."""


@dataclass(frozen=True)
class LdapSettings:
    """Where the LDAP server is and how to find a user's entry and groups.

    Either ``user_dn_template`` (``uid={username},ou=people,dc=example,dc=com``: the entry is bound
    directly) or ``search_base`` with ``search_filter`` (found first, bound as ``bind_dn`` or
    anonymously). Groups are the entries under ``group_base`` that ``group_filter`` matches, with
    ``{dn}`` the user's entry and ``{username}`` the login name (both escaped).
    """

    url: str
    user_dn_template: str | None = None
    search_base: str | None = None
    search_filter: str = "(uid={username})"
    bind_dn: str | None = None
    bind_password: str | None = None
    group_base: str | None = None
    group_filter: str = "(|(member={dn})(uniqueMember={dn}))"
    start_tls: bool = False
    ca_file: str | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class OidcSettings:
    """An OpenID provider: its issuer (discovery at ``/.well-known/openid-configuration``) and our client."""

    issuer: str
    client_id: str
    client_secret: str
    name: str = ""
    scope: str = "openid profile email"
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    timeout: float = 5.0

    @property
    def label(self) -> str:
        """What the login page's button names: ``Log in with <label>``."""
        return self.name or urlsplit(self.issuer).hostname or self.issuer

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class DirectorySettings:
    """Which directories are configured (none by default) and the group → role map."""

    ldap: LdapSettings | None = None
    oidc: OidcSettings | None = None
    #: (normalised group DN or claim value, role key) pairs; a group may map to several roles
    role_map: tuple[tuple[str, str], ...] = field(default=())

    @property
    def managed_roles(self) -> set[str]:
        """The roles a directory login sets: every role the map names."""
        return {role for _, role in self.role_map}

    def roles_for(self, groups: Iterable[str]) -> set[str]:
        held = {normalise_group(group) for group in groups}
        return {role for group, role in self.role_map if group in held}


def normalise_group(group: str) -> str:
    """Group DNs compare without case and without spaces around ``,`` and ``=``; claim values likewise."""
    return ",".join("=".join(part.strip() for part in rdn.split("=", 1)) for rdn in group.strip().split(",")).lower()


def parse_role_map(text: str) -> tuple[tuple[str, str], ...]:
    """``GROUP=ROLE;GROUP=ROLE``: the role is after the *last* ``=`` (group DNs hold ``=`` themselves).

    :raises DirectoryMisconfigured: an entry without a group or a role
    """
    pairs = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        group, sep, role = entry.rpartition("=")
        if not sep or not group.strip() or not role.strip():
            raise DirectoryMisconfigured(f"DEPTFLOW_DIRECTORY_ROLE_MAP: {entry!r} is not GROUP=ROLE")
        pairs.append((normalise_group(group), role.strip()))
    return tuple(pairs)


def settings_from_environ(environ: Mapping[str, str] | None = None) -> DirectorySettings:
    """The directory settings from ``DEPTFLOW_*`` variables (README, "Configuration").

    :raises DirectoryMisconfigured: LDAP without a way to find users, OIDC without a client, a bad map
    """
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if v != ""}
    timeout = float(env.get("DEPTFLOW_DIRECTORY_TIMEOUT", "5"))
    ldap = oidc = None
    if "DEPTFLOW_LDAP_URL" in env:
        if "DEPTFLOW_LDAP_USER_DN_TEMPLATE" not in env and "DEPTFLOW_LDAP_SEARCH_BASE" not in env:
            raise DirectoryMisconfigured("DEPTFLOW_LDAP_URL is set: set DEPTFLOW_LDAP_USER_DN_TEMPLATE "
                                         "or DEPTFLOW_LDAP_SEARCH_BASE too")
        ldap = LdapSettings(
            url=env["DEPTFLOW_LDAP_URL"],
            user_dn_template=env.get("DEPTFLOW_LDAP_USER_DN_TEMPLATE"),
            search_base=env.get("DEPTFLOW_LDAP_SEARCH_BASE"),
            search_filter=env.get("DEPTFLOW_LDAP_SEARCH_FILTER", LdapSettings.search_filter),
            bind_dn=env.get("DEPTFLOW_LDAP_BIND_DN"),
            bind_password=env.get("DEPTFLOW_LDAP_BIND_PASSWORD"),
            group_base=env.get("DEPTFLOW_LDAP_GROUP_BASE"),
            group_filter=env.get("DEPTFLOW_LDAP_GROUP_FILTER", LdapSettings.group_filter),
            start_tls=env.get("DEPTFLOW_LDAP_STARTTLS") == "1",
            ca_file=env.get("DEPTFLOW_LDAP_CA_FILE"),
            timeout=timeout,
        )
    if "DEPTFLOW_OIDC_ISSUER" in env:
        if "DEPTFLOW_OIDC_CLIENT_ID" not in env:
            raise DirectoryMisconfigured("DEPTFLOW_OIDC_ISSUER is set: set DEPTFLOW_OIDC_CLIENT_ID "
                                         "(and DEPTFLOW_OIDC_CLIENT_SECRET) too")
        oidc = OidcSettings(
            issuer=env["DEPTFLOW_OIDC_ISSUER"],
            client_id=env["DEPTFLOW_OIDC_CLIENT_ID"],
            client_secret=env.get("DEPTFLOW_OIDC_CLIENT_SECRET", ""),
            name=env.get("DEPTFLOW_OIDC_NAME", ""),
            scope=env.get("DEPTFLOW_OIDC_SCOPE", OidcSettings.scope),
            username_claim=env.get("DEPTFLOW_OIDC_USERNAME_CLAIM", OidcSettings.username_claim),
            groups_claim=env.get("DEPTFLOW_OIDC_GROUPS_CLAIM", OidcSettings.groups_claim),
            timeout=timeout,
        )
    return DirectorySettings(ldap=ldap, oidc=oidc, role_map=parse_role_map(env.get("DEPTFLOW_DIRECTORY_ROLE_MAP", "")))


@dataclass(frozen=True)
class DirectoryPerson:
    """A person as the directory describes them, after it checked who they are."""

    username: str
    full_name: str
    email: str | None
    groups: tuple[str, ...]
    #: the password hash that marks their local row (never a valid argon2 hash)
    identity: str


def _login_name(username: str) -> str:
    return username.strip().lower()[:80]


def is_directory_user(user: User) -> bool:
    return user.password_hash.startswith("!")


def password_keeper(settings: DirectorySettings, user: User) -> str | None:
    """Who keeps the password of ``user``, for the change-password page: ``None`` for a local account,
    else the directory that checks it (LDAP, or the OpenID provider by the name its login button shows)."""
    if not is_directory_user(user):
        return None
    if user.password_hash == LDAP_IDENTITY:
        return "the directory (LDAP)"
    if user.password_hash.startswith("!oidc:"):
        return f"the OpenID provider {settings.oidc.label}" if settings.oidc is not None else "the OpenID provider"
    return "the directory"


# --- LDAP ---------------------------------------------------------------------------------


def ldap_lookup(settings: LdapSettings, username: str, password: str) -> DirectoryPerson | None:
    """Bind as the user and read their name, e-mail and groups; ``None`` when the bind is refused.

    An empty password is refused here: LDAP would take it as an anonymous bind and succeed.

    :raises DirectoryUnavailable: the server cannot be reached, times out or fails otherwise
    """
    name = _login_name(username)
    if not name or not password:
        return None
    server = ldap3.Server(settings.url, connect_timeout=settings.timeout, get_info=ldap3.NONE, tls=_tls(settings))
    try:
        dn = _user_dn(server, settings, name)
        if dn is None:
            return None
        conn = _connect(server, settings, dn, password)
        try:
            if not conn.bind():
                return _refused(conn)
            return _read_person(conn, settings, dn, name)
        finally:
            conn.unbind()
    except (LDAPException, OSError) as exc:
        log.warning("LDAP directory %s failed: %s", settings.url, exc)
        raise DirectoryUnavailable("The directory (LDAP) is unreachable, so directory accounts cannot log in "
                                   "right now. Local accounts still can.") from exc


def _tls(settings: LdapSettings) -> ldap3.Tls | None:
    if settings.start_tls or settings.url.lower().startswith("ldaps:") or settings.ca_file:
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file)
    return None


def _connect(server: ldap3.Server, settings: LdapSettings, user: str | None, password: str | None) -> ldap3.Connection:
    # ldap3 packs the receive timeout as whole seconds (a float is a struct.error)
    conn = ldap3.Connection(server, user=user, password=password, receive_timeout=max(1, round(settings.timeout)),
                            raise_exceptions=False, read_only=True, auto_referrals=False)
    conn.open()
    if settings.start_tls:
        conn.start_tls()
    return conn


def _refused(conn: ldap3.Connection) -> None:
    """A bind that failed: wrong credentials are ``None``; a busy or broken server is unavailable."""
    if conn.result.get("result") in _REFUSED:
        return None
    raise DirectoryUnavailable(f"The directory (LDAP) did not answer the login: {conn.result.get('description')}.")


def _user_dn(server: ldap3.Server, settings: LdapSettings, name: str) -> str | None:
    """The user's entry: from the template, or the one entry the search finds (none, or two, is no user)."""
    if settings.user_dn_template:
        return settings.user_dn_template.format(username=escape_rdn(name))
    conn = _connect(server, settings, settings.bind_dn, settings.bind_password)
    try:
        if not conn.bind():
            log.warning("LDAP search bind as %s refused: %s", settings.bind_dn, conn.result.get("description"))
            raise DirectoryUnavailable("The directory (LDAP) refused deptflow's own login; tell your administrator.")
        conn.search(settings.search_base, settings.search_filter.format(username=escape_filter_chars(name)),
                    ldap3.SUBTREE, attributes=[], size_limit=2)
        found = [entry["dn"] for entry in conn.response or () if entry.get("type") == "searchResEntry"]
        return found[0] if len(found) == 1 else None
    finally:
        conn.unbind()


def _first(attributes: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return None


def _read_person(conn: ldap3.Connection, settings: LdapSettings, dn: str, name: str) -> DirectoryPerson | None:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["uid", "cn", "displayName", "mail"])
    entries = [entry for entry in conn.response or () if entry.get("type") == "searchResEntry"]
    attributes = entries[0]["attributes"] if entries else {}
    groups: list[str] = []
    if settings.group_base:
        conn.search(settings.group_base, settings.group_filter.format(
            dn=escape_filter_chars(dn), username=escape_filter_chars(name)), ldap3.SUBTREE, attributes=["cn"])
        groups = [entry["dn"] for entry in conn.response or () if entry.get("type") == "searchResEntry"]
    username = _login_name(_first(attributes, "uid") or name)
    return DirectoryPerson(username=username, full_name=_first(attributes, "displayName", "cn") or username,
                           email=_first(attributes, "mail"), groups=tuple(groups), identity=LDAP_IDENTITY)


def authenticate(session: Session, settings: DirectorySettings, username: str, password: str,
                 address: str | None = None) -> User | None:
    """Log in with a password: a local account by its own hash, anyone else (LDAP configured) by the directory.

    A directory login is limited and audited like a local one (the same per-account and per-address
    limits, ``login`` and ``login_failed`` events with ``method``), and brings the local user up to
    date first (:func:`sync_user`).

    :param address: the client's IP address (``request.remote_addr``)
    :raises LoginLocked: as :func:`engine.users.authenticate`
    :raises DirectoryUnavailable: the account is not local and the directory cannot be asked
    """
    name = _login_name(username)
    existing = users.user_by_name(session, name)
    if settings.ldap is None or (existing is not None and not is_directory_user(existing)):
        return users.authenticate(session, username, password, address)
    address = (address or "unknown")[:64]
    users.check_login_limits(session, name, address, existing)
    person = ldap_lookup(settings.ldap, name, password[:users.MAX_PASSWORD_LENGTH])
    user = sync_user(session, settings, person, "ldap") if person is not None else None
    if user is None or not user.active:
        audit.record(session, EventKind.LOGIN_FAILED, username=name, known_user=existing is not None,
                     address=address, method="ldap")
        return None
    audit.record(session, EventKind.LOGIN, actor=user, address=address, method="ldap")
    return user


# --- OpenID Connect -----------------------------------------------------------------------


def oidc_identity(issuer: str, subject: str) -> str:
    """The password-hash mark of an OpenID user: who they are at which provider, not their (changeable) name."""
    return "!oidc:" + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def oidc_person(settings: OidcSettings, claims: Mapping[str, Any]) -> DirectoryPerson | None:
    """The person the provider's verified ID token (and userinfo) describe; ``None`` without a subject or name."""
    subject = claims.get("sub")
    username = claims.get(settings.username_claim) or claims.get("email")
    if not subject or not isinstance(username, str) or not _login_name(username):
        return None
    groups = claims.get(settings.groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    email = claims.get("email")
    return DirectoryPerson(
        username=_login_name(username), full_name=str(claims.get("name") or username)[:200],
        email=str(email)[:200] if email else None, groups=tuple(str(g) for g in groups if isinstance(g, str | int)),
        identity=oidc_identity(settings.issuer, str(subject)))


def login_with_claims(session: Session, settings: DirectorySettings, claims: Mapping[str, Any],
                      address: str | None = None) -> User | None:
    """Log in the person of a verified ID token: the local user is brought up to date, the login audited.

    :returns: the user, or ``None`` (audited as ``login_failed``) when the token names nobody, the
        username belongs to a local account or another directory identity, or the user is deactivated
    """
    assert settings.oidc is not None
    address = (address or "unknown")[:64]
    person = oidc_person(settings.oidc, claims)
    user = sync_user(session, settings, person, "oidc") if person is not None else None
    if user is None or not user.active:
        audit.record(session, EventKind.LOGIN_FAILED, username=person.username if person else None,
                     known_user=user is not None, address=address, method="oidc")
        return None
    audit.record(session, EventKind.LOGIN, actor=user, address=address, method="oidc")
    return user


def record_failure(session: Session, method: str, reason: str, address: str | None = None) -> None:
    """A directory login that failed before anyone was named (a refused or forged OpenID answer)."""
    audit.record(session, EventKind.LOGIN_FAILED, username=None, known_user=False,
                 address=(address or "unknown")[:64], method=method, reason=reason[:200])


# --- the local user -----------------------------------------------------------------------


def _snapshot(user: User) -> dict[str, Any]:
    return {"full_name": user.full_name, "email": user.email, "roles": sorted(user.role_keys)}


def sync_user(session: Session, settings: DirectorySettings, person: DirectoryPerson, method: str) -> User | None:
    """Create or update the local user of ``person``: name, e-mail, and the directory-managed roles.

    The roles the map names are replaced by those the person's groups map to; others stay. A change
    is audited as ``user_changed`` (``before`` is ``None`` for a new user).

    :returns: the user, or ``None`` when the username belongs to a local account or another identity
    """
    user = users.user_by_name(session, person.username)
    before = None
    if user is None:
        user = User(username=person.username, full_name=person.full_name, email=person.email,
                    password_hash=person.identity, roles=[])
        session.add(user)
    elif user.password_hash != person.identity:
        log.warning("%s login for %s refused: the username belongs to another account", method, person.username)
        return None
    else:
        before = _snapshot(user)
    managed, wanted = settings.managed_roles, settings.roles_for(person.groups)
    found = {role.key: role for role in session.scalars(select(Role).where(Role.key.in_(managed)))}
    for missing in sorted(wanted - found.keys()):
        log.warning("DEPTFLOW_DIRECTORY_ROLE_MAP names the role %r, which does not exist", missing)
    kept = [role for role in user.roles if role.key not in managed]
    user.roles = sorted(kept + [found[key] for key in wanted if key in found], key=lambda role: role.key)
    user.full_name, user.email = person.full_name, person.email
    session.flush()
    after = _snapshot(user)
    if before != after:
        audit.record(session, EventKind.USER_CHANGED, actor=user, user=user.username, before=before, after=after,
                     source=method)
    return user
