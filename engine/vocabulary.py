"""The engine's words in one place: statuses, event kinds and permissions.

They are ``StrEnum``s, so they compare equal to the strings stored in the database and
shown in templates (``InstanceStatus.RUNNING == "running"``).
"""

from __future__ import annotations

from enum import StrEnum


class InstanceStatus(StrEnum):
    RUNNING = "running"
    SUSPENDED = "suspended"
    #: stopped by a failed script, condition or loop budget: the owner fixes it and retries
    INCIDENT = "incident"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @classmethod
    def open(cls) -> tuple[InstanceStatus, ...]:
        """Statuses of a case that has not ended."""
        return cls.RUNNING, cls.SUSPENDED, cls.INCIDENT


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EventKind(StrEnum):
    """Every kind of event on the audit chain."""

    STARTED = "started"
    TASK_CREATED = "task_created"
    CLAIMED = "claimed"
    UNCLAIMED = "unclaimed"
    DELEGATED = "delegated"
    #: the assignee set (or cleared) a task's follow-up date
    FOLLOW_UP_SET = "follow_up_set"
    COMPLETED = "completed"
    TASK_CANCELLED = "task_cancelled"
    GATEWAY_DECISION = "gateway_decision"
    TIMER_FIRED = "timer_fired"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    INCIDENT = "incident"
    RETRIED = "retried"
    MIGRATED = "migrated"
    ENDED = "ended"
    DEFINITION_DRAFTED = "definition_drafted"
    DEFINITION_PUBLISHED = "definition_published"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    LOGIN_LIMIT_LIFTED = "login_limit_lifted"
    PASSWORD_CHANGED = "password_changed"
    #: a user's session generation was raised: logout, password change or deactivation
    SESSIONS_ENDED = "sessions_ended"
    USER_CHANGED = "user_changed"
    USER_CREATED = "user_created"
    #: a set-password link was made (and mailed); the token itself is never logged
    PASSWORD_LINK_SENT = "password_link_sent"
    #: a user set their password from a set-password link
    PASSWORD_SET = "password_set"
    #: a deactivated user's task went back to its roles' queue
    TASK_RETURNED = "task_returned"
    ROLE_CREATED = "role_created"
    ROLE_CHANGED = "role_changed"
    #: a role's members were added or removed (from the role's page)
    ROLE_MEMBERS_CHANGED = "role_members_changed"
    PROCESS_SETTINGS_CHANGED = "process_settings_changed"
    API_TOKEN_CREATED = "api_token_created"
    API_TOKEN_REVOKED = "api_token_revoked"
    #: a group that diagrams name was mapped to a role (or to another role)
    GROUP_MAPPED = "group_mapped"
    GROUP_UNMAPPED = "group_unmapped"
    #: a Java delegate that diagrams name was mapped to an external task topic (or to another topic)
    DELEGATE_MAPPED = "delegate_mapped"
    DELEGATE_UNMAPPED = "delegate_unmapped"
    #: an external service task began to wait for a worker of its topic
    EXTERNAL_TASK_CREATED = "external_task_created"
    #: a worker completed an external task (with the variables it sent)
    EXTERNAL_TASK_COMPLETED = "external_task_completed"
    #: a worker reported that it failed at an external task (with its message and the retries left)
    EXTERNAL_TASK_FAILED = "external_task_failed"
    #: a comment on a case or one of its tasks, with its text
    COMMENTED = "commented"
    #: a file added to a case (a form's file field or directly): its name, type, size and SHA-256
    ATTACHED = "attached"
    #: a BPMN message reached the case (woke a catch, or started it): its name, business key and variables
    MESSAGE_RECEIVED = "message_received"
    #: the case's throw event sent a message, and the cases it reached
    MESSAGE_SENT = "message_sent"


class Permission(StrEnum):
    """What a role allows beyond working on its tasks. Roles hold them as data (``roles.permissions``)."""

    #: manage users and roles; cancel, suspend and resume any case; delegate any task
    ADMINISTER = "administer"
    #: search and export every case with its history
    AUDIT = "audit"
    #: the modeler: drafts, publishing, moving cases between versions
    MODEL = "model"
    #: open every case and task, read-only
    READ_ALL_CASES = "read_all_cases"
    #: read every process's statistics (a process's owner role reads its own)
    STATISTICS = "statistics"
    #: fetch, lock, complete and fail external tasks (the API's workers)
    EXTERNAL_WORKER = "external_worker"
