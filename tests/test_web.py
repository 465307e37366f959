"""HTTP behaviour of the pages: login, permissions, errors, CSRF."""

from __future__ import annotations

import re

import pytest

from web import create_app


def test_pages_need_login(client):
    for path in ("/", "/processes", "/requests", "/tasks/1", "/instances/1"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login?next=")


def test_wrong_password_keeps_the_username(client):
    response = client.post("/login", data={"username": "mark", "password": "wrong"})
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert 'value="mark"' in page and "Unknown username or wrong password." in page


def test_login_follows_only_local_next(client):
    response = client.post("/login?next=//evil.example/x", data={"username": "mark", "password": "demo"})
    assert response.location == "/"
    client.post("/logout")
    response = client.post("/login?next=/requests", data={"username": "mark", "password": "demo"})
    assert response.location == "/requests"


def test_logout_ends_the_session(login_as):
    client = login_as("mark")
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    ("username", "visible"),
    [
        ("cathy", {"customer_complaint", "customer_satisfaction_survey"}),
        ("steve", {"engineering_drawing_application", "bid_suggestion"}),
        ("mark", {"dealer_audit"}),
        ("rita", {"marketing_plan_approval", "ad_campaign_approval"}),
        ("sam", {"sales_target_setting"}),
        ("diego", {"new_product_launch"}),
        ("alice", set()),
    ],
)
def test_start_page_lists_only_what_my_roles_may_start(login_as, username, visible):
    page = login_as(username).get("/processes").get_data(as_text=True)
    assert set(re.findall(r'id="process-(\w+)"', page)) == visible


def test_the_starter_follows_a_task_of_their_case_read_only(login_as):
    steve = login_as("steve")
    drawing = {"title": "Drawings for Hotel Aurora", "customer_name": "Hotel Aurora", "project_name": "Lobby",
               "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "40"}
    assert steve.post("/processes/engineering_drawing_application/start", data=drawing).status_code == 302
    requests = steve.get("/requests").get_data(as_text=True)
    case_id = re.search(r'href="/instances/(\d+)"', requests).group(1)
    case = steve.get(f"/instances/{case_id}").get_data(as_text=True)
    task_id = re.search(r'href="/tasks/(\d+)"', case).group(1)
    page = steve.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Waiting for someone of Comprehensive clerk to take it." in page
    # no claim, no form to complete: the starter only watches (and may comment, as anyone who sees the case)
    assert not re.search(r'action="/tasks/\d+/(claim|complete|unclaim|delegate)"', page)
    assert steve.post(f"/tasks/{task_id}/claim").status_code == 403


def test_a_long_inbox_has_pages(login_as):
    steve = login_as("steve")
    for i in range(53):
        drawing = {"title": f"Drawings {i}", "customer_name": "Hotel Aurora", "project_name": "Lobby",
                   "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "4"}
        assert steve.post("/processes/engineering_drawing_application/start", data=drawing).status_code == 302
    clara = login_as("clara")
    first = clara.get("/").get_data(as_text=True)
    assert '<span id="count-available">53</span>' in first and "1–50 of 53" in first
    assert first.count('data-task-id="') == 50 and 'href="/?queue=2&amp;mine=1" rel="next"' in first
    second = clara.get("/?queue=2").get_data(as_text=True)
    assert "51–53 of 53" in second and second.count('data-task-id="') == 3 and 'rel="next"' not in second
    assert clara.get("/?queue=x").status_code == 200  # a bad page number is page 1


def test_starting_a_process_of_another_role_is_403(login_as):
    client = login_as("alice")
    assert client.get("/processes/customer_complaint/start").status_code == 403
    response = client.post("/processes/customer_complaint/start", data={"title": "x"})
    assert response.status_code == 403 and "Not allowed" in response.get_data(as_text=True)


def test_unknown_things_are_404_pages(login_as):
    client = login_as("mark")
    for path in ("/tasks/999999", "/instances/999999", "/processes/nope/start", "/no/such/page"):
        response = client.get(path)
        assert response.status_code == 404, path
        page = response.get_data(as_text=True)
        assert "404 · Not found" in page and "Traceback" not in page


def test_wrong_method_is_a_page(login_as):
    response = login_as("mark").get("/tasks/1/complete")
    assert response.status_code == 405 and "Method not allowed" in response.get_data(as_text=True)


def test_csrf_is_enforced(sqlite_url):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test"})
    client = app.test_client()
    response = client.post("/login", data={"username": "mark", "password": "demo"})
    assert response.status_code == 400 and "form expired" in response.get_data(as_text=True)
    login_page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    response = client.post("/login", data={"username": "mark", "password": "demo", "csrf_token": token})
    assert response.status_code == 302
    app.extensions["deptflow_engine"].dispose()


def test_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_unexpected_errors_are_a_page_and_roll_back(app, login_as, monkeypatch):
    from engine import inbox

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(inbox, "inbox", broken)
    response = login_as("mark").get("/")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "nothing was saved" in page and "disk on fire" not in page and "Traceback" not in page
