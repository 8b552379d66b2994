"""Moving a teacher's span distributions onto the student's word pieces by character offsets."""

import numpy as np
import pytest

from reader.distill import kd_loss, project

# context "Basel bridge 1226": student pieces [CLS] q [SEP] Basel | bridge | 12 | ##26 [SEP]
S_OFF = np.array([[0, 0], [0, 0], [0, 0], [0, 5], [6, 12], [13, 15], [15, 17], [0, 0]])
S_CTX = np.array([False, False, False, True, True, True, True, False])
# the teacher read "bridge 1226" (characters 6..17): <s> q </s></s> bridge | 1226 </s>
T_OFF = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [0, 6], [7, 11], [0, 0]])
T_CTX = np.array([False, False, False, False, True, True, False])


def test_start_mass_goes_to_the_piece_holding_the_first_character():
    probs = np.array([0.1, 0, 0, 0, 0.2, 0.7, 0])
    got = project(probs, T_OFF, T_CTX, S_OFF, S_CTX, shift=6, side="start")
    assert got[0] == pytest.approx(0.1)  # no answer stays no answer
    assert got[4] == pytest.approx(0.2)  # "bridge"
    assert got[5] == pytest.approx(0.7)  # "1226" starts in "12"
    assert got.sum() == pytest.approx(1.0)


def test_end_mass_goes_to_the_piece_holding_the_last_character():
    probs = np.array([0.0, 0, 0, 0, 0.4, 0.6, 0])
    got = project(probs, T_OFF, T_CTX, S_OFF, S_CTX, shift=6, side="end")
    assert got[4] == pytest.approx(0.4) and got[6] == pytest.approx(0.6)  # "1226" ends in "##26"


def test_mass_outside_the_students_window_is_dropped_and_the_rest_renormalised():
    s_ctx = S_CTX.copy()
    s_ctx[5:7] = False  # the student's window ends before "1226"
    probs = np.array([0.1, 0, 0, 0, 0.1, 0.8, 0])
    got = project(probs, T_OFF, T_CTX, S_OFF, s_ctx, shift=6, side="start")
    assert got[0] == pytest.approx(0.5) and got[4] == pytest.approx(0.5) and got.sum() == pytest.approx(1)


def test_kd_loss_is_zero_when_the_student_matches_and_ignores_padding():
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[2.0, 1.0, 0.0, 50.0]])
    mask = torch.tensor([[True, True, True, False]])
    target = torch.softmax(logits[:, :3] / 2, -1)
    target = torch.cat([target, torch.zeros(1, 1)], -1)
    assert kd_loss(logits, target, mask, 2.0).item() == pytest.approx(0.0, abs=1e-5)
    assert kd_loss(logits, torch.tensor([[0.0, 0.0, 1.0, 0.0]]), mask, 2.0).item() > 0.1
