"""MTCNN (Zhang et al. 2016): a three-stage cascade of small CNNs that finds faces and 5 landmarks.

Our own implementation of the networks and the cascade; the weights are facenet-pytorch 2.6.0's
`pnet.pt`, `rnet.pt`, `onet.pt` (state dicts converted from the authors' Caffe models), which
`rlse-fast fetch-assets` copies from that package's PyPI wheel into the asset cache. The package
itself is never imported.

Coordinates: boxes (x1, y1, x2, y2) and landmarks (x, y) in the photo's pixel-index coordinates as
the reference cascade reports them (about 1 px of offset is inherited from the Caffe original; it is
below what matters for alignment at 12-64 px faces). Landmarks are ordered left eye, right eye, nose,
left mouth corner, right mouth corner (left/right as seen in the image).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import assets

ASSET_NAMES = ("mtcnn/pnet.pt", "mtcnn/rnet.pt", "mtcnn/onet.pt")


class PNet(nn.Module):
    """12x12 proposal net, fully convolutional: (B, 3, H, W) -> box offsets (B, 4, h, w), face prob (B, 2, h, w)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    # The converted dense weights expect Caffe's (W, H, C) flattening order.
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """24x24 refinement net: (B, 3, 24, 24) -> box offsets (B, 4), face prob (B, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_caffe_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """48x48 output net: (B, 3, 48, 48) -> box offsets (B, 4), landmarks (B, 10: 5 x then 5 y), face prob (B, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression on (N, 4) inclusive pixel boxes; indices kept, best first.
    'union': overlap = intersection / union; 'min': intersection / the smaller area."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (side = the longer side)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + (1 if plus_one else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if plus_one else 0)
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _crops(img: torch.Tensor, boxes: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Patches of (1, 3, H, W) `img` under `boxes` (clipped to the photo), area-resized to size x size;
    and which boxes gave a non-empty patch."""
    _, _, h, w = img.shape
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x1, y1 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    x2, y2 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    ok = (x2 > x1 - 1) & (y2 > y1 - 1)
    patches = [F.interpolate(img[:, :, y1[k] - 1:y2[k], x1[k] - 1:x2[k]], size=(size, size), mode="area")
               for k in np.flatnonzero(ok)]
    if not patches:
        return torch.zeros(0, 3, size, size), ok
    return torch.cat(patches), ok


class MTCNN:
    """The cascade. `detect(rgb)` with rgb an (H, W, 3) uint8 array -> boxes (N, 4) float, scores (N,),
    landmarks (N, 5, 2), best score first."""

    def __init__(self, state_dicts: tuple[dict, dict, dict], min_face: float = 12.0,
                 thresholds=(0.6, 0.7, 0.7), factor: float = 0.709, device="cpu"):
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, sd in zip((self.pnet, self.rnet, self.onet), state_dicts):
            net.load_state_dict(sd)
            net.eval().to(device)
        self.min_face = float(min_face)
        self.thresholds = thresholds
        self.factor = factor
        self.device = torch.device(device)

    @classmethod
    def from_cache(cls, **kwargs) -> "MTCNN":
        paths = [assets.require(n, "MTCNN face-detector weights") for n in ASSET_NAMES]
        return cls(tuple(torch.load(p, map_location="cpu", weights_only=True) for p in paths), **kwargs)

    def _scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.min_face
        side = min(h, w) * m
        scales = []
        while side >= 12:
            scales.append(m)
            m *= self.factor
            side *= self.factor
        return scales

    @torch.no_grad()
    def detect(self, rgb: np.ndarray):
        h, w = rgb.shape[:2]
        img = torch.from_numpy(np.array(rgb, dtype=np.uint8)).to(self.device).permute(2, 0, 1)[None].float()
        empty = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))

        # Stage 1: PNet over an image pyramid; each 12x12 window (stride 2) is a candidate.
        cands = []
        for scale in self._scales(h, w):
            x = F.interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet((x - 127.5) * 0.0078125)
            prob, reg = prob[0, 1].cpu().numpy(), reg[0].cpu().numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if ys.size == 0:
                continue
            q1 = np.floor((2 * np.stack([xs, ys], 1) + 1) / scale)
            q2 = np.floor((2 * np.stack([xs, ys], 1) + 12) / scale)
            boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], 1)
            cands.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not cands:
            return empty
        boxes = np.concatenate(cands)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = np.concatenate([_regress(boxes[:, :4], boxes[:, 5:9], plus_one=False), boxes[:, 4:5]], 1)
        boxes = _square(boxes)

        # Stage 2: RNet rescores and refines each candidate on a 24x24 crop.
        patches, ok = _crops(img, boxes, 24)
        boxes = boxes[ok]
        if not len(boxes):
            return empty
        reg, prob = self.rnet((patches - 127.5) * 0.0078125)
        score, reg = prob[:, 1].cpu().numpy(), reg.cpu().numpy()
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], 1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, reg = boxes[pick], reg[pick]
        boxes = _square(np.concatenate([_regress(boxes[:, :4], reg), boxes[:, 4:5]], 1))
        if not len(boxes):
            return empty

        # Stage 3: ONet on 48x48 crops: final score, box and the 5 landmarks.
        patches, ok = _crops(img, boxes, 48)
        boxes = boxes[ok]
        if not len(boxes):
            return empty
        reg, pts, prob = self.onet((patches - 127.5) * 0.0078125)
        score, reg, pts = prob[:, 1].cpu().numpy(), reg.cpu().numpy(), pts.cpu().numpy()
        keep = score > self.thresholds[2]
        boxes, score, reg, pts = boxes[keep, :4], score[keep], reg[keep], pts[keep]
        bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        lm = np.stack([bw[:, None] * pts[:, :5] + boxes[:, :1] - 1,
                       bh[:, None] * pts[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        pick = nms(boxes, score, 0.7, "min")
        return boxes[pick], score[pick], lm[pick]
