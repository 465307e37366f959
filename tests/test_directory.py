"""Directory logins against real servers that the tests start on 127.0.0.1, as PostgreSQL is used:
Debian's OpenLDAP ``slapd`` (its own configuration, a test suffix, people and groups from LDIF) and
the OpenID provider of ``oidc-provider-mock``. A missing server skips; under
``DEPTFLOW_REQUIRE_DIRECTORY=1`` (CI) it fails.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import ldap3
import pytest
import requests
from sqlalchemy import select
from support import unavailable

from engine import directory, users
from engine.db import Event
from engine.directory import DirectorySettings, LdapSettings, OidcSettings
from engine.errors import InvalidForm
from workflows.catalogue import DEMO_PASSWORD

SUFFIX = "dc=example,dc=com"
ADMIN_DN, ADMIN_PASSWORD = f"cn=admin,{SUFFIX}", "slapd-admin-secret"
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"
SALES, MANAGERS = f"cn=sales,{GROUPS}", f"cn=managers,{GROUPS}"
ROLE_MAP = directory.parse_role_map(f"{SALES}=sales_rep; {MANAGERS.upper()}=sales_manager; sales=sales_rep")
PASSWORDS = {"lena": "lena-directory-pw", "omar": "omar-directory-pw", "steve": "steve-in-the-directory"}

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {root}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_password}
directory {root}/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


def _person(uid: str, name: str) -> str:
    return (f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
            f"sn: {name.split()[-1]}\nmail: {uid}@example.com\nuserPassword: {PASSWORDS[uid]}\n")


def _group(dn: str, members: list[str]) -> str:
    cn = dn.split(",")[0].split("=")[1]
    lines = "".join(f"member: {m}\n" for m in [ADMIN_DN, *members])  # groupOfNames needs one member
    return f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"


LDIF = "\n".join([
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
    f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    _person("lena", "Lena Lind"), _person("omar", "Omar Osei"), _person("steve", "Steve Directory"),
    _group(SALES, [f"uid=lena,{PEOPLE}", f"uid=omar,{PEOPLE}"]), _group(MANAGERS, [f"uid=lena,{PEOPLE}"]),
])


def _require_directory(what: str, problem: str | None) -> None:
    """Skip without the server; fail instead under ``DEPTFLOW_REQUIRE_DIRECTORY=1`` (CI), like PostgreSQL."""
    if problem:
        unavailable("DIRECTORY", f"{what}: {problem}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen | None = None, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def _sbin(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.access(p, os.X_OK)), None)


class Slapd:
    """One OpenLDAP server with its own configuration (slapd.conf converted to slapd.d by slaptest)."""

    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        (self.root / "data").mkdir(parents=True)
        (self.root / "slapd.d").mkdir()
        conf = self.root / "slapd.conf"
        conf.write_text(SLAPD_CONF.format(root=self.root, suffix=SUFFIX, admin=ADMIN_DN, admin_password=ADMIN_PASSWORD))
        (self.root / "people.ldif").write_text(LDIF)
        # slapadd creates the database first: slaptest opens it to check the configuration
        for command in ([_sbin("slapadd"), "-q", "-f", str(conf), "-l", str(self.root / "people.ldif")],
                        [_sbin("slaptest"), "-Q", "-f", str(conf), "-F", str(self.root / "slapd.d")]):
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        self.log = open(self.root / "slapd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([_sbin("slapd"), "-F", str(self.root / "slapd.d"), "-h", f"{self.url}/",
                                         "-d", "0"], stdout=self.log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()

    def admin(self) -> ldap3.Connection:
        conn = ldap3.Connection(ldap3.Server(self.url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
        return conn


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    missing = [name for name in ("slapd", "slapadd", "slaptest") if _sbin(name) is None]
    _require_directory("OpenLDAP's slapd", f"{', '.join(missing)} not installed (apt-get install slapd)"
                       if missing else None)
    server = Slapd(tmp_path / "slapd")
    server.start()
    yield server
    server.stop()


#: the forms deptflow posted to the provider's token endpoint (the mock does not check PKCE: the tests do)
TOKEN_REQUESTS: list[dict[str, list[str]]] = []


def _recording_token_requests(wsgi_app):
    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            TOKEN_REQUESTS.append(parse_qs(body.decode()))
            environ["wsgi.input"] = io.BytesIO(body)
        return wsgi_app(environ, start_response)

    return app


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    """The mock OpenID provider on 127.0.0.1 (its issuer is the address it is asked at)."""
    try:
        import oidc_provider_mock
        import werkzeug.serving
    except ImportError as exc:
        _require_directory("oidc-provider-mock", f"cannot be imported ({exc})")
    server = werkzeug.serving.make_server("127.0.0.1", 0, _recording_token_requests(oidc_provider_mock.app()),
                                          threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _app(sqlite_url: str, workflow_engine, settings: DirectorySettings):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
                       "WORKFLOW_ENGINE": workflow_engine, "DIRECTORY": settings})


@pytest.fixture
def make_app(sqlite_url, workflow_engine):
    """An app with the given directory settings, disposed afterwards: ``make_app(DirectorySettings(...))``."""
    apps = []

    def make(settings: DirectorySettings):
        apps.append(_app(sqlite_url, workflow_engine, settings))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["deptflow_engine"].dispose()


def _ldap_settings(url: str, **changes) -> DirectorySettings:
    ldap = LdapSettings(url=url, user_dn_template=f"uid={{username}},{PEOPLE}", group_base=GROUPS, timeout=2,
                        **changes)
    return DirectorySettings(ldap=ldap, role_map=ROLE_MAP)


def _db(app):
    return app.extensions["deptflow_sessions"]()


def _events(app, kind: str) -> list[Event]:
    with _db(app) as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def _login(app, username: str, password: str):
    return app.test_client().post("/login", data={"username": username, "password": password})


# --- LDAP -------------------------------------------------------------------------------------


def test_ldap_login_creates_the_user_with_the_mapped_roles(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    response = _login(app, "Lena", PASSWORDS["lena"])
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    with _db(app) as session:
        lena = users.user_by_name(session, "lena")
        assert (lena.full_name, lena.email, lena.role_keys) == ("Lena Lind", "lena@example.com",
                                                                {"sales_rep", "sales_manager"})
        assert lena.password_hash == directory.LDAP_IDENTITY, "no local password opens a directory user"
        lena_id = lena.id
    changed, = _events(app, "user_changed")
    assert changed.actor_id == lena_id and changed.data["source"] == "ldap" and changed.data["before"] is None
    assert changed.data["after"]["roles"] == ["sales_manager", "sales_rep"]
    login, = _events(app, "login")
    assert login.actor_id == lena_id and login.data["method"] == "ldap"
    assert not users.authenticate(_db(app), "lena", directory.LDAP_IDENTITY), "the mark is no password"


def test_a_wrong_ldap_password_is_refused_and_limited_like_a_local_one(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    for _ in range(users.FREE_FAILURES):
        refused = _login(app, "lena", "guess")
        assert refused.status_code == 401 and "wrong password" in refused.get_data(as_text=True)
    locked = _login(app, "lena", PASSWORDS["lena"])
    assert locked.status_code == 429 and "Too many failed logins" in locked.get_data(as_text=True)
    failed = _events(app, "login_failed")
    assert [(e.data["username"], e.data["method"]) for e in failed] == [("lena", "ldap")] * users.FREE_FAILURES
    assert len(_events(app, "login_locked")) == 1 and not _events(app, "login")
    assert _login(app, "omar", PASSWORDS["omar"]).status_code == 302, "other accounts are not held up"


def test_no_anonymous_bind_and_no_dn_injection(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    assert _login(app, "lena", "").status_code == 401, "an empty password would be an anonymous bind"
    assert _login(app, "nobody", "x").status_code == 401
    assert _login(app, f"lena,{PEOPLE}", PASSWORDS["lena"]).status_code == 401
    assert _login(app, "*", PASSWORDS["lena"]).status_code == 401
    with _db(app) as session:
        assert users.user_by_name(session, "lena") is None


def test_a_user_removed_from_a_group_loses_the_role_at_the_next_login(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    assert _login(app, "lena", PASSWORDS["lena"]).status_code == 302
    with _db(app) as session:  # a role given by hand, which the map does not name, stays
        lena = users.user_by_name(session, "lena")
        lena.roles.append(session.get(type(lena.roles[0]), "finance"))
        session.commit()
    with slapd.admin() as admin:
        admin.modify(MANAGERS, {"member": [(ldap3.MODIFY_DELETE, [f"uid=lena,{PEOPLE}"])]})
        assert admin.result["result"] == 0, admin.result
    assert _login(app, "lena", PASSWORDS["lena"]).status_code == 302
    with _db(app) as session:
        assert users.user_by_name(session, "lena").role_keys == {"sales_rep", "finance"}
    second = _events(app, "user_changed")[-1]
    assert second.data["before"]["roles"] == ["finance", "sales_manager", "sales_rep"]
    assert second.data["after"]["roles"] == ["finance", "sales_rep"]
    assert _login(app, "lena", PASSWORDS["lena"]).status_code == 302
    assert len(_events(app, "user_changed")) == 2, "an unchanged user is no event"


def test_a_directory_that_is_down_leaves_local_logins_working(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    assert _login(app, "lena", PASSWORDS["lena"]).status_code == 302
    slapd.stop()
    down = _login(app, "lena", PASSWORDS["lena"])
    page = down.get_data(as_text=True)
    assert down.status_code == 503 and "directory (LDAP) is unreachable" in page and "Traceback" not in page
    assert 'value="lena"' in page
    assert _login(app, "steve", DEMO_PASSWORD).status_code == 302, "local accounts never ask the directory"
    assert not [e for e in _events(app, "login_failed") if e.data.get("method") == "ldap"], "no failure counted"


def test_a_directory_login_never_takes_over_a_local_account(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    assert _login(app, "steve", PASSWORDS["steve"]).status_code == 401
    assert _login(app, "steve", DEMO_PASSWORD).status_code == 302
    with _db(app) as session:
        assert users.user_by_name(session, "steve").full_name == "Steve Hall"


def test_a_directory_user_is_told_the_directory_keeps_their_password(slapd, make_app):
    app = make_app(_ldap_settings(slapd.url))
    client = app.test_client()
    assert client.post("/login", data={"username": "lena", "password": PASSWORDS["lena"]}).status_code == 302
    page = client.get("/account/password")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "managed by the directory (LDAP)" in text
    assert 'name="current"' not in text and "<form method=\"post\" novalidate>" not in text
    assert 'href="/account/password"' in text, "the account menu keeps its link"
    posted = client.post("/account/password", data={"current": PASSWORDS["lena"], "new": "a-new-local-password",
                                                    "repeated": "a-new-local-password"})
    assert posted.status_code == 403 and "managed by the directory (LDAP)" in posted.get_data(as_text=True)
    assert client.get("/processes").status_code == 200, "the session goes on"
    with _db(app) as session:
        lena = users.user_by_name(session, "lena")
        assert lena.password_hash == directory.LDAP_IDENTITY
        with pytest.raises(InvalidForm) as refused:
            users.change_password(session, lena, PASSWORDS["lena"], "a-new-local-password", "a-new-local-password")
        assert "managed by the directory" in refused.value.errors["current"]
    assert not _events(app, "password_changed") and not _events(app, "sessions_ended")

    local = app.test_client()
    assert local.post("/login", data={"username": "steve", "password": DEMO_PASSWORD}).status_code == 302
    text = local.get("/account/password").get_data(as_text=True)
    assert 'name="current"' in text and "managed by" not in text, "local users keep the form"


def test_ldap_search_mode_finds_the_entry_with_a_service_account(slapd, make_app):
    settings = DirectorySettings(ldap=LdapSettings(url=slapd.url, search_base=PEOPLE, bind_dn=ADMIN_DN,
                                                   bind_password=ADMIN_PASSWORD, group_base=GROUPS),
                                 role_map=ROLE_MAP)
    app = make_app(settings)
    assert _login(app, "omar", PASSWORDS["omar"]).status_code == 302
    assert _login(app, "omar", "guess").status_code == 401
    with _db(app) as session:
        assert users.user_by_name(session, "omar").role_keys == {"sales_rep"}


# --- OpenID Connect ---------------------------------------------------------------------------


def _oidc_settings(issuer: str) -> DirectorySettings:
    oidc = OidcSettings(issuer=issuer, client_id="deptflow", client_secret="deptflow-secret", name="Example SSO",
                        timeout=2)
    return DirectorySettings(oidc=oidc, role_map=ROLE_MAP)


def _provider_user(provider: str, sub: str, **claims) -> None:
    response = requests.put(f"{provider}/users/{sub}", json=claims, timeout=5)
    assert response.status_code == 204, response.text


def _oidc_login(client, provider: str, sub: str, next_path: str = "/processes"):
    """Follow the redirects: deptflow → the provider's form (over HTTP) → deptflow's callback."""
    start = client.get(f"/login/sso?next={next_path}")
    assert start.status_code == 302 and start.location.startswith(provider), start.location
    query = parse_qs(urlsplit(start.location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"] and query["nonce"]
    authorized = requests.post(start.location, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert authorized.status_code == 302, authorized.text[:500]
    back = urlsplit(authorized.headers["Location"])
    assert back.path == "/login/sso/callback"
    TOKEN_REQUESTS.clear()
    done = client.get(f"{back.path}?{back.query}")
    if TOKEN_REQUESTS:  # the code was exchanged with the verifier whose S256 digest the browser carried
        verifier, = TOKEN_REQUESTS[-1]["code_verifier"]
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        assert query["code_challenge"] == [digest]
    return done


def test_oidc_login_with_a_claim_to_role_mapping(oidc_provider, make_app):
    app = make_app(_oidc_settings(oidc_provider))
    client = app.test_client()
    assert "Log in with Example SSO" in client.get("/login").get_data(as_text=True)
    _provider_user(oidc_provider, "olga-0001", preferred_username="Olga", name="Olga Ode",
                   email="olga@example.com", groups=["sales", "unmapped"])
    done = _oidc_login(client, oidc_provider, "olga-0001")
    assert done.status_code == 302 and done.location == "/processes" and TOKEN_REQUESTS
    assert client.get("/processes").status_code == 200
    with _db(app) as session:
        olga = users.user_by_name(session, "olga")
        assert (olga.full_name, olga.email, olga.role_keys) == ("Olga Ode", "olga@example.com", {"sales_rep"})
        assert olga.password_hash == directory.oidc_identity(oidc_provider, "olga-0001")
        olga_id = olga.id
    login, = _events(app, "login")
    assert login.actor_id == olga_id and login.data["method"] == "oidc"
    assert _events(app, "user_changed")[0].data["source"] == "oidc"

    _provider_user(oidc_provider, "olga-0001", preferred_username="olga", name="Olga Ode", groups=[])
    again = app.test_client()
    assert _oidc_login(again, oidc_provider, "olga-0001").status_code == 302
    with _db(app) as session:
        assert users.user_by_name(session, "olga").role_keys == set(), "the claim went, and the role with it"


def test_an_openid_user_is_told_the_provider_keeps_their_password(oidc_provider, make_app):
    app = make_app(_oidc_settings(oidc_provider))
    client = app.test_client()
    _provider_user(oidc_provider, "petra-0001", preferred_username="petra", name="Petra Pohl")
    assert _oidc_login(client, oidc_provider, "petra-0001").status_code == 302
    page = client.get("/account/password")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "managed by the OpenID provider Example SSO" in text
    assert 'name="current"' not in text
    posted = client.post("/account/password", data={"current": "x", "new": "a-new-local-password",
                                                    "repeated": "a-new-local-password"})
    assert posted.status_code == 403 and "managed by the OpenID provider Example SSO" in posted.get_data(as_text=True)
    with _db(app) as session:
        assert users.user_by_name(session, "petra").password_hash == directory.oidc_identity(oidc_provider,
                                                                                              "petra-0001")


def test_oidc_refuses_a_taken_username_and_a_forged_answer(oidc_provider, make_app):
    app = make_app(_oidc_settings(oidc_provider))
    _provider_user(oidc_provider, "mallory-1", preferred_username="admin", name="Not Ada")
    client = app.test_client()
    refused = _oidc_login(client, oidc_provider, "mallory-1")
    assert refused.status_code == 302 and refused.location.endswith("/login")
    assert "cannot log in here" in client.get("/login").get_data(as_text=True)
    assert client.get("/processes").status_code == 302, "not logged in"
    forged = client.get("/login/sso/callback?code=made-up&state=made-up")
    assert forged.status_code == 302 and forged.location.endswith("/login")
    methods = [(e.data["method"], e.data["username"]) for e in _events(app, "login_failed")]
    assert methods == [("oidc", "admin"), ("oidc", None)]
    with _db(app) as session:
        assert users.user_by_name(session, "admin").full_name == "Ada Admin"


def test_an_unreachable_provider_leaves_local_logins_working(make_app):
    app = make_app(_oidc_settings(f"http://127.0.0.1:{_free_port()}"))
    client = app.test_client()
    sent_back = client.get("/login/sso")
    assert sent_back.status_code == 302 and sent_back.location.endswith("/login")
    page = client.get("/login").get_data(as_text=True)
    assert "Example SSO is unreachable" in page
    assert _login(app, "steve", DEMO_PASSWORD).status_code == 302


def test_no_sso_routes_without_a_provider(client):
    assert client.get("/login/sso").status_code == 404
    assert "Log in with" not in client.get("/login").get_data(as_text=True)


# --- settings -----------------------------------------------------------------------------------


def test_settings_from_the_environment():
    settings = directory.settings_from_environ({
        "DEPTFLOW_LDAP_URL": "ldaps://ldap.example.com", "DEPTFLOW_LDAP_USER_DN_TEMPLATE": f"uid={{username}},{PEOPLE}",
        "DEPTFLOW_LDAP_GROUP_BASE": GROUPS, "DEPTFLOW_OIDC_ISSUER": "https://id.example.com/realms/x",
        "DEPTFLOW_OIDC_CLIENT_ID": "deptflow", "DEPTFLOW_OIDC_CLIENT_SECRET": "s", "DEPTFLOW_DIRECTORY_TIMEOUT": "3",
        "DEPTFLOW_DIRECTORY_ROLE_MAP": f"{SALES}=sales_rep;cn=Managers, ou=groups, dc=example, dc=com=sales_manager;"
                                       "marketing=marketing_manager"})
    assert settings.ldap.url == "ldaps://ldap.example.com" and settings.ldap.timeout == 3
    assert settings.oidc.label == "id.example.com" and settings.oidc.metadata_url.endswith(
        "/realms/x/.well-known/openid-configuration")
    assert settings.managed_roles == {"sales_rep", "sales_manager", "marketing_manager"}
    assert settings.roles_for([MANAGERS.upper(), "Marketing"]) == {"sales_manager", "marketing_manager"}
    assert directory.settings_from_environ({}) == DirectorySettings()
    with pytest.raises(directory.DirectoryMisconfigured, match="GROUP=ROLE"):
        directory.parse_role_map("cn=sales,dc=example;=x")
    with pytest.raises(directory.DirectoryMisconfigured, match="DEPTFLOW_LDAP_USER_DN_TEMPLATE"):
        directory.settings_from_environ({"DEPTFLOW_LDAP_URL": "ldap://x"})


def test_serve_refuses_a_misconfigured_directory(monkeypatch):
    from click.testing import CliRunner

    from web.cli import main

    monkeypatch.setenv("DEPTFLOW_LDAP_URL", "ldap://127.0.0.1:1")
    result = CliRunner().invoke(main, ["serve", "--demo", "--port", "1"])
    assert result.exit_code == 2 and "DEPTFLOW_LDAP_USER_DN_TEMPLATE" in result.output
