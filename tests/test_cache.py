"""viz.cache: one LRU for every cache, keyed by what determines the content."""
import threading

import pytest

from viz.cache import LRU


def test_keeps_the_most_recently_used_entries():
    lru, built = LRU(2), []

    def maker(k):
        return lambda: built.append(k) or 10 * k

    assert [lru.get(k, maker(k)) for k in (1, 2, 1, 3)] == [10, 20, 10, 30]
    assert built == [1, 2, 3] and lru.keys() == [1, 3]  # 1 was used after 2, so 2 went
    assert (lru.hits, lru.misses) == (1, 3) and len(lru) == 2 and 2 not in lru


def test_put_keeps_the_first_value_and_peek_leaves_the_order():
    lru = LRU(2)
    assert lru.put("a", 1) == 1 and lru.put("a", 2) == 1  # a racing second build loses
    lru.put("b", 2)
    assert lru.peek("a") == 1 and lru.keys() == ["a", "b"] and lru.peek("c", "none") == "none"
    lru.put("c", 3)
    assert lru.keys() == ["b", "c"]
    lru.clear()
    assert len(lru) == 0


def test_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        LRU(0)


def test_threads_filling_one_cache_keep_its_bound():
    lru = LRU(8)

    def fill(t):
        for k in range(50):
            lru.get((t, k), lambda k=k: k)

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lru) == 8 and lru.misses == 200


def test_a_second_thread_waits_for_the_build_under_way():
    import time

    lru, calls = LRU(4), []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return "built"

    t = threading.Thread(target=lambda: lru.get("k", slow))
    t.start()
    time.sleep(0.05)
    assert lru.get("k", slow) == "built" and len(calls) == 1  # waited, did not build again
    t.join()


def test_a_failed_build_leaves_no_entry_and_the_next_call_builds():
    lru = LRU(2)
    with pytest.raises(RuntimeError):
        lru.get("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert "k" not in lru and lru.get("k", lambda: 1) == 1
