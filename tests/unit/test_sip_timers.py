"""gateway/sip/timers.py: the transaction layer's deadline queue. Lanes (one per timer
duration) and the heap together must behave exactly like one ordered set of live deadlines:
the earliest (deadline, arming order) first, a cancelled or re-armed key never fires."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.timers import TimerHeap


def test_lanes_and_heap_fire_in_deadline_then_arming_order() -> None:
    h: TimerHeap[str] = TimerHeap()
    h.schedule("b32", 32.0, lane=32.0)
    h.schedule("a05", 0.5, lane=0.5)
    h.schedule("loose", 4.0)  # no lane: the heap
    h.schedule("k5", 5.0, lane=5.0)
    h.schedule("tie", 5.0, lane=0.5)  # same deadline as k5, armed later
    assert h.next_deadline() == 0.5
    assert [h.pop_due(100.0) for _ in range(6)] == ["a05", "loose", "k5", "tie", "b32", None]


def test_a_cancelled_or_rearmed_timer_does_not_fire_at_its_old_deadline() -> None:
    h: TimerHeap[str] = TimerHeap()
    h.schedule("A", 0.5, lane=0.5)
    h.schedule("B", 32.0, lane=32.0)
    h.cancel("B")
    h.schedule("A", 1.5, lane=1.0)  # re-armed: the 0.5 entry is stale
    assert h.pop_due(1.0) is None
    assert h.next_deadline() == 1.5
    assert h.pop_due(1.5) == "A"
    assert h.next_deadline() is None and len(h) == 0


def test_an_entry_earlier_than_its_lane_goes_to_the_heap_and_still_fires_first() -> None:
    # A caller whose clock stepped back: the lane would be out of order, so the heap takes it.
    h: TimerHeap[str] = TimerHeap()
    h.schedule("late", 10.0, lane=5.0)
    h.schedule("early", 7.0, lane=5.0)
    assert [h.pop_due(10.0), h.pop_due(10.0)] == ["early", "late"]


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), st.integers(0, 7), st.integers(0, 60), st.sampled_from([None, 1, 5, 32])),
        st.tuples(st.just("cancel"), st.integers(0, 7)),
        st.tuples(st.just("pop"), st.integers(0, 100)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_behaves_like_a_plain_ordered_set_of_live_deadlines(ops) -> None:
    h: TimerHeap[int] = TimerHeap()
    model: dict[int, tuple[float, int]] = {}  # key -> (deadline, arming order)
    armed = 0
    for op in ops:
        if op[0] == "arm":
            _, key, deadline, lane = op
            h.schedule(key, float(deadline), lane=lane)
            model[key] = (float(deadline), armed)
            armed += 1
        elif op[0] == "cancel":
            h.cancel(op[1])
            model.pop(op[1], None)
        else:
            now = float(op[1])
            due = sorted((v, k) for k, v in model.items() if v[0] <= now)
            want = due[0][1] if due else None
            assert h.pop_due(now) == want
            if want is not None:
                del model[want]
        assert len(h) == len(model)
        assert h.next_deadline() == (min(v[0] for v in model.values()) if model else None)
