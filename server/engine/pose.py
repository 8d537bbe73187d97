"""OpenPose guide images from keypoints, drawn with controlnet-aux's own functions.

The keypoints arrive in the OpenPose JSON convention, one entry per frame:
`{"people": [{"pose_keypoints_2d": [x, y, c] * 18, "hand_left_keypoints_2d": [...] * 21,
"hand_right_keypoints_2d": [...] * 21, "face_keypoints_2d": [...] * 70}]}` in pixels of the job's size,
COCO-18 order. A confidence of 0 means "omitted" (behind the camera, outside the frame or hidden): it is not drawn.
The palette, limb order and stick width are controlnet-aux's, which is what the openpose ControlNet was trained on.
"""

from __future__ import annotations

import numpy as np
from controlnet_aux.open_pose import util
from controlnet_aux.open_pose.body import Keypoint

_MISSING = Keypoint(0.0, 0.0, 0.0)
PARTS = {"pose_keypoints_2d": 18, "hand_left_keypoints_2d": 21, "hand_right_keypoints_2d": 21, "face_keypoints_2d": 70}


def parse_frames(data, frames: int, width: int, height: int) -> list[list[dict]]:
    """Validate the pose JSON; returns per frame a list of people, each {part: [Keypoint | None]}.

    Raises ValueError with a message naming the frame, person and part to fix.
    """
    if not isinstance(data, list) or len(data) != frames:
        got = len(data) if isinstance(data, list) else type(data).__name__
        raise ValueError(f"pose: expected a list of {frames} frames, got {got}")
    out = []
    for f, frame in enumerate(data):
        people = frame.get("people") if isinstance(frame, dict) else None
        if not isinstance(people, list):
            raise ValueError(f'pose[{f}]: expected an object with a "people" list')
        parsed = []
        for p, person in enumerate(people):
            if not isinstance(person, dict):
                raise ValueError(f"pose[{f}].people[{p}]: expected an object")
            entry = {}
            for part, count in PARTS.items():
                values = person.get(part)
                if values is None:
                    continue
                where = f"pose[{f}].people[{p}].{part}"
                if (
                    not isinstance(values, list)
                    or len(values) != 3 * count
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                ):
                    raise ValueError(f"{where}: expected {3 * count} numbers (x, y, confidence for {count} points)")
                points = []
                for k in range(count):
                    x, y, c = values[3 * k : 3 * k + 3]
                    if c <= 0:
                        points.append(None)
                        continue
                    if not (0 <= x <= width and 0 <= y <= height):
                        raise ValueError(
                            f"{where}: point {k} at ({x}, {y}) is outside the {width}x{height} "
                            f"image; omit it with confidence 0"
                        )
                    points.append(Keypoint(x / width, y / height, float(c), k))
                entry[part] = points
            parsed.append(entry)
        out.append(parsed)
    return out


def draw(people: list[dict], width: int, height: int) -> np.ndarray:
    """One pose image (height, width, 3) uint8 RGB on black, as controlnet-aux's OpenposeDetector draws it."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for person in people:
        if "pose_keypoints_2d" in person:
            canvas = util.draw_bodypose(canvas, person["pose_keypoints_2d"])
        # The hand and face helpers skip points at (0, 0), which is how controlnet-aux marks a missing one.
        for hand in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            if hand in person:
                canvas = util.draw_handpose(canvas, [k or _MISSING for k in person[hand]])
        if "face_keypoints_2d" in person:
            canvas = util.draw_facepose(canvas, [k or _MISSING for k in person["face_keypoints_2d"]])
    return canvas
