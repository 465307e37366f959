import cProfile
import pstats
import time

from engine import actions, task_filters, users
from engine.core import WorkflowEngine
from engine.db import make_engine


def test_profile(sqlite_url):
    engine = make_engine(sqlite_url)
    sessions = WorkflowEngine().session_factory(engine)
    with sessions() as s:
        sam = users.user_by_name(s, "sam")
        for i in range(20):
            actions.start_process(s, sam, "sales_target_setting", {"target_year": "2027", "target_period": "year",
                                                                  "title": f"T {i}"})
        for name, crit in (("a", {"text": "T 1"}), ("b", {"process": "sales_target_setting"}), ("c", {"due": "week"})):
            task_filters.save_filter(s, sam, name, task_filters.TaskFilter.parse(crit))
        s.commit()
    for _ in range(5):
        with sessions() as s:
            task_filters.inbox_page(s, users.user_by_name(s, "sam"))
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    for _ in range(20):
        with sessions() as s:
            u = users.user_by_name(s, "sam")
            prof.enable()
            task_filters.inbox_page(s, u)
            prof.disable()
    print("per call ms", (time.perf_counter() - t0) / 20 * 1000)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
