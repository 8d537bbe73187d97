"""Pose images are drawn exactly as controlnet-aux draws its detections, and omitted points stay undrawn."""

from __future__ import annotations

import numpy as np
import pytest
from controlnet_aux.open_pose import BodyResult, PoseResult, draw_poses
from controlnet_aux.open_pose.body import Keypoint

from server.engine import pose

W, H = 96, 128


def person(seed: int, omit=()):
    rng = np.random.default_rng(seed)
    body = []
    for k in range(18):
        x, y = rng.uniform(5, W - 5), rng.uniform(5, H - 5)
        body += [x, y, 0.0 if k in omit else 0.9]
    hand = [v for _ in range(21) for v in (rng.uniform(5, W - 5), rng.uniform(5, H - 5), 1.0)]
    face = [v for _ in range(70) for v in (rng.uniform(5, W - 5), rng.uniform(5, H - 5), 1.0)]
    return {"pose_keypoints_2d": body, "hand_left_keypoints_2d": hand, "face_keypoints_2d": face}


def reference(people_json):
    """controlnet-aux's own drawing of the same keypoints (normalised, None where omitted)."""

    def points(values, count):
        return [
            None if values[3 * k + 2] <= 0 else Keypoint(values[3 * k] / W, values[3 * k + 1] / H) for k in range(count)
        ]

    poses = []
    for p in people_json:
        hand = p.get("hand_left_keypoints_2d")
        poses.append(
            PoseResult(
                BodyResult(points(p["pose_keypoints_2d"], 18), 0.0, 18),
                points(hand, 21) if hand else None,
                None,
                points(p["face_keypoints_2d"], 70) if "face_keypoints_2d" in p else None,
            )
        )
    return draw_poses(poses, H, W)


def test_drawing_equals_controlnet_aux():
    people = [person(1), person(2, omit=(4, 7))]
    ours = pose.draw(pose.parse_frames([{"people": people}], 1, W, H)[0], W, H)
    assert ours.shape == (H, W, 3) and ours.dtype == np.uint8
    assert np.array_equal(ours, reference(people))
    assert ours.any()


def test_omitted_points_are_not_drawn():
    full = person(3)
    body_only = {"pose_keypoints_2d": full["pose_keypoints_2d"]}
    drawn = pose.draw(pose.parse_frames([{"people": [body_only]}], 1, W, H)[0], W, H)
    hidden = dict(body_only, pose_keypoints_2d=[0.0] * 54)
    assert not pose.draw(pose.parse_frames([{"people": [hidden]}], 1, W, H)[0], W, H).any()
    wrist = body_only["pose_keypoints_2d"][3 * 4 : 3 * 4 + 2]
    x, y = int(wrist[0]), int(wrist[1])
    assert drawn[y, x].any()
    no_wrist = list(body_only["pose_keypoints_2d"])
    no_wrist[3 * 4 + 2] = 0.0
    assert not np.array_equal(
        drawn, pose.draw(pose.parse_frames([{"people": [{"pose_keypoints_2d": no_wrist}]}], 1, W, H)[0], W, H)
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ([{"people": []}], "2 frames"),
        ([{"people": [{"pose_keypoints_2d": [1, 2]}]}] * 2, "54 numbers"),
        ([{"nobody": []}] * 2, "people"),
        ([{"people": [{"pose_keypoints_2d": [W + 1.0, 3.0, 1.0] + [0.0] * 51}]}] * 2, "outside"),
    ],
)
def test_bad_pose_json_names_what_to_fix(data, message):
    with pytest.raises(ValueError, match=message):
        pose.parse_frames(data, 2, W, H)
