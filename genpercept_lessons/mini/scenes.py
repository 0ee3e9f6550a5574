"""MiniScenes: a small numpy ray-caster of indoor-like rooms with exact depth, normals and labels.

Conventions (also stated in notebook 00 and the README):

* ``K`` is the usual OpenCV pinhole matrix: pixel ``(u, v)`` (u right, v down, pixel centres at
  integer + 0.5) sees the ray ``K^-1 [u, v, 1]`` in the OpenCV camera frame (x right, y down, z forward).
* ``depth`` is *planar* depth: the z coordinate of the hit point in that frame, in metres (not the
  distance along the ray; Hypersim stores distances, see Marigold's `src/dataset/*_dataset.py`).
* ``normals`` are unit vectors in the camera frame that diffusers' ``visualize_normals`` and Marigold
  assume: x right, **y up, z toward the viewer** (OpenCV frame with y and z negated). A wall seen
  head-on has normal (0, 0, 1), which ``visualize_normals`` shows as RGB (128, 128, 255).
* Invalid pixels (rays leaving the room through a window) have ``mask`` False, depth 0, normal 0
  and label 255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LABELS", "IGNORE_LABEL", "Scene", "render_scene", "colour_name", "scene_caption"]

LABELS = ("floor", "wall", "ceiling", "sphere", "box")
IGNORE_LABEL = 255
_FLOOR, _WALL, _CEIL, _SPHERE, _BOX = range(5)
_MISS = np.inf
_GAMMA = 1.6  # display gamma of the rendered images


@dataclass
class Scene:
    """One rendered view, the columns of a MiniScenes row.

    image uint8 [H,W,3], depth float32 [H,W] (m), normals float32 [H,W,3], mask bool [H,W], label uint8 [H,W],
    K float32 [3,3].
    """

    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    mask: np.ndarray
    label: np.ndarray
    K: np.ndarray


# ----------------------------------------------------------------------------------------------
# textures

def _value_noise(rng: np.random.Generator, cells: int = 8):
    """A tileable smooth 2-D value-noise function f(u, v) -> [0, 1] built from a random lattice."""
    lattice = rng.random((cells, cells))

    def f(u, v):
        u = np.mod(u, 1.0) * cells
        v = np.mod(v, 1.0) * cells
        i0, j0 = np.floor(u).astype(int) % cells, np.floor(v).astype(int) % cells
        i1, j1 = (i0 + 1) % cells, (j0 + 1) % cells
        fu, fv = u - np.floor(u), v - np.floor(v)
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
        top = lattice[i0, j0] * (1 - fu) + lattice[i1, j0] * fu
        bot = lattice[i0, j1] * (1 - fu) + lattice[i1, j1] * fu
        return top * (1 - fv) + bot * fv

    return f


def _random_material(rng: np.random.Generator):
    """A texture function (u, v) -> RGB in [0,1]: plain colour, checker, or value noise."""
    base = rng.uniform(0.15, 0.9, 3)
    second = np.clip(base * rng.uniform(0.4, 0.8) + rng.uniform(-0.1, 0.1, 3), 0.02, 1.0)
    kind = rng.choice(["plain", "checker", "noise"], p=[0.35, 0.3, 0.35])
    if kind == "plain":
        def texture(u, v):
            return np.broadcast_to(base, u.shape + (3,))
    elif kind == "checker":
        freq = rng.uniform(2.0, 5.0)
        def texture(u, v):
            c = (np.floor(u * freq) + np.floor(v * freq)) % 2
            return np.where(c[..., None] > 0, base, second)
    else:
        noise, scale = _value_noise(rng), rng.uniform(0.3, 1.0)
        def texture(u, v):
            t = noise(u * scale, v * scale)[..., None]
            return base * (1 - t) + second * t
    texture.base, texture.kind = base, str(kind)  # what a caption says of it (scene_caption)
    return texture


# ----------------------------------------------------------------------------------------------
# geometry (world frame: x right, y up, z forward into the room; floor at y = 0)

def _ray_plane(o, d, axis, value):
    """Distance along rays to the plane coord[axis] == value (inf when parallel or behind)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - o[axis]) / d[:, axis]
    return np.where(t > 1e-6, t, _MISS)


def _ray_sphere(o, d, centre, radius):
    oc = o - centre
    b = d @ oc
    c = oc @ oc - radius * radius
    disc = b * b - c
    sq = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = -b - sq, -b + sq
    t = np.where(t0 > 1e-6, t0, np.where(t1 > 1e-6, t1, _MISS))
    return np.where(disc > 0, t, _MISS)


def _ray_box(o, d, centre, half, yaw):
    """Slab test against a box rotated by ``yaw`` about the vertical axis; returns t and the local hit axis/sign."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # world -> local
    lo, ld = R @ (o - centre), d @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / ld
        t1, t2 = (-half - lo) * inv, (half - lo) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    tnear, tfar = tmin.max(axis=1), tmax.min(axis=1)
    hit = (tnear <= tfar) & (tnear > 1e-6)
    axis = tmin.argmax(axis=1)
    sign = -np.sign(ld[np.arange(len(ld)), axis])
    return np.where(hit, tnear, _MISS), axis, sign, R


def _random_layout(rng: np.random.Generator):
    room = {"w": rng.uniform(4.0, 7.0), "depth": rng.uniform(5.0, 8.0), "h": rng.uniform(2.5, 3.2)}
    objects = []
    for _ in range(rng.integers(1, 4)):  # spheres resting on the floor
        r = rng.uniform(0.25, 0.7)
        x = rng.uniform(-room["w"] / 2 + r + 0.1, room["w"] / 2 - r - 0.1)
        z = rng.uniform(2.0, room["depth"] - r - 0.1)
        objects.append(("sphere", np.array([x, r, z]), r, _random_material(rng)))
    for _ in range(rng.integers(1, 4)):  # boxes standing on the floor
        half = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.8)])
        x = rng.uniform(-room["w"] / 2 + 0.9, room["w"] / 2 - 0.9)
        z = rng.uniform(2.0, room["depth"] - 0.9)
        objects.append(("box", np.array([x, half[1], z]), (half, rng.uniform(0, np.pi / 2)), _random_material(rng)))
    window = None
    if rng.random() < 0.35:  # an opening in the back wall: rays through it hit nothing (invalid pixels)
        ww, wh = rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.2)
        wx, wy = rng.uniform(-room["w"] / 2 + ww / 2 + 0.2, room["w"] / 2 - ww / 2 - 0.2), rng.uniform(0.9, room["h"] - wh - 0.2)
        window = (wx - ww / 2, wx + ww / 2, wy, wy + wh)
    light = np.array([rng.uniform(-room["w"] / 3, room["w"] / 3), room["h"] - rng.uniform(0.2, 0.6),
                      rng.uniform(1.0, room["depth"] - 1.0)])
    materials = [_random_material(rng) for _ in range(3)]  # floor, walls, ceiling
    return room, objects, window, light, materials


def _random_camera(rng: np.random.Generator, height: int, width: int, room):
    hfov = np.deg2rad(rng.uniform(55.0, 65.0))
    fx = 0.5 * width / np.tan(hfov / 2)
    K = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1.0]])
    pos = np.array([rng.uniform(-room["w"] / 2 + 0.6, room["w"] / 2 - 0.6), rng.uniform(1.2, 1.8), rng.uniform(0.2, 1.0)])
    yaw, pitch = rng.uniform(-0.3, 0.3), rng.uniform(-0.28, 0.0)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    forward = np.array([sy * cp, sp, cy * cp])
    right = np.array([cy, 0.0, -sy])
    up = np.cross(forward, right)
    cam_to_world = np.stack([right, -up, forward], axis=1)  # columns: OpenCV x (right), y (down), z (forward)
    return K, pos, cam_to_world


def _trace(o, dirs, room, objects, window):
    """Closest hit for each ray: t, label, world normal, object index and texture coordinates."""
    n = len(dirs)
    best_t = np.full(n, _MISS)
    label = np.full(n, IGNORE_LABEL, dtype=np.uint8)
    normal = np.zeros((n, 3))
    surface = np.full(n, -1)  # 0 floor, 1 walls, 2 ceiling, 3+ objects
    W, D, H = room["w"], room["depth"], room["h"]
    planes = [(1, 0.0, _FLOOR, (0, 1, 0)), (1, H, _CEIL, (0, -1, 0)), (0, -W / 2, _WALL, (1, 0, 0)),
              (0, W / 2, _WALL, (-1, 0, 0)), (2, D, _WALL, (0, 0, -1)), (2, -0.5, _WALL, (0, 0, 1))]
    for axis, value, lab, nrm in planes:
        t = _ray_plane(o, dirs, axis, value)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs
        t = np.where(p[:, 2] > D + 1e-6, _MISS, t)  # the planes end at the back wall (seen through the window)
        if axis == 2 and value == D and window is not None:
            inside = (p[:, 0] > window[0]) & (p[:, 0] < window[1]) & (p[:, 1] > window[2]) & (p[:, 1] < window[3])
            t = np.where(inside, _MISS, t)
        closer = t < best_t
        best_t[closer], label[closer], normal[closer], surface[closer] = t[closer], lab, nrm, {0: 0, 1: 1, 2: 2}[lab]
    for k, (kind, centre, size, _) in enumerate(objects):
        if kind == "sphere":
            t = _ray_sphere(o, dirs, centre, size)
            closer = t < best_t
            p = o + t[closer, None] * dirs[closer]
            normal[closer] = (p - centre) / size
            label[closer] = _SPHERE
        else:
            half, yaw = size
            t, axis, sign, R = _ray_box(o, dirs, centre, half, yaw)
            closer = t < best_t
            local = np.zeros((closer.sum(), 3))
            local[np.arange(len(local)), axis[closer]] = sign[closer]
            normal[closer] = local @ R  # local -> world
            label[closer] = _BOX
        best_t[closer], surface[closer] = t[closer], 3 + k
    return best_t, label, normal, surface


def _shade(o, dirs, t, normal, surface, room, objects, materials, light, ambient):
    """Lambertian shading with hard shadows from a point light; textures looked up per surface."""
    n = len(dirs)
    rgb = np.zeros((n, 3))
    hit = np.isfinite(t)
    p = o + np.where(hit, t, 0.0)[:, None] * dirs
    for s in np.unique(surface[hit]):
        sel = surface == s
        q = p[sel]
        if s == 0:
            uv = (q[:, 0] * 0.5, q[:, 2] * 0.5)
        elif s == 2:
            uv = (q[:, 0] * 0.4, q[:, 2] * 0.4)
        elif s == 1:
            horizontal = np.where(np.abs(normal[sel, 0]) > 0.5, q[:, 2], q[:, 0])
            uv = (horizontal * 0.4, q[:, 1] * 0.4)
        else:
            kind, centre, _, _ = objects[s - 3]
            local = q - centre
            if kind == "sphere":
                r = np.linalg.norm(local, axis=1) + 1e-9
                uv = (np.arctan2(local[:, 0], local[:, 2]) / (2 * np.pi) * 3, np.arccos(np.clip(local[:, 1] / r, -1, 1)) / np.pi * 2)
            else:
                uv = (local[:, 0] + local[:, 2], local[:, 1] + 0.5 * local[:, 2])
        tex = materials[s](*uv) if s < 3 else objects[s - 3][3](*uv)
        rgb[sel] = tex
    to_light = light - p
    dist = np.linalg.norm(to_light, axis=1, keepdims=True) + 1e-9
    ldir = to_light / dist
    lambert = np.clip((normal * ldir).sum(axis=1), 0.0, None)
    shadow = np.zeros(n, dtype=bool)
    origin_offset = p + normal * 1e-4
    for kind, centre, size, _ in objects:
        if kind == "sphere":
            oc = origin_offset - centre
            b = (ldir * oc).sum(axis=1)
            c = (oc * oc).sum(axis=1) - size * size
            disc = b * b - c
            tt = -b - np.sqrt(np.maximum(disc, 0))
            shadow |= (disc > 0) & (tt > 1e-6) & (tt < dist[:, 0])
        else:
            half, yaw = size
            cyaw, syaw = np.cos(yaw), np.sin(yaw)
            R = np.array([[cyaw, 0, -syaw], [0, 1, 0], [syaw, 0, cyaw]])
            lo, ld = (origin_offset - centre) @ R.T, ldir @ R.T
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = 1.0 / ld
                t1, t2 = (-half - lo) * inv, (half - lo) * inv
            tnear, tfar = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
            shadow |= (tnear <= tfar) & (tnear > 1e-6) & (tnear < dist[:, 0])
    falloff = 1.0 / (1.0 + 0.04 * dist[:, 0] ** 2)
    light_term = ambient + (1.0 - ambient) * 1.6 * lambert * falloff * (~shadow)
    rgb = rgb * light_term[:, None]
    # what is seen through the window: a bright sky gradient
    sky = np.array([0.62, 0.78, 0.95]) * (0.8 + 0.2 * np.clip(dirs[:, 1:2], 0, 1))
    rgb = np.where(hit[:, None], rgb, sky)
    return np.clip(rgb, 0.0, 1.0)


def _pixel_rays(K, cam_to_world, height, width, subsamples):
    s = subsamples
    offs = (np.arange(s) + 0.5) / s
    u = (np.arange(width)[:, None] + offs[None, :]).reshape(-1)
    v = (np.arange(height)[:, None] + offs[None, :]).reshape(-1)
    uu, vv = np.meshgrid(u, v)
    cam = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], axis=-1).reshape(-1, 3)
    world = cam @ cam_to_world.T
    return cam, world / np.linalg.norm(world, axis=1, keepdims=True)


def _check_size(caller: str, height, width) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 8 or value > 4096:
            raise ValueError(f"{caller}: `{name}` must be an int in [8, 4096], got {value!r}")


def render_scene(seed: int, index: int, height: int = 64, width: int = 64, supersample: int = 2) -> Scene:
    """Render scene ``index`` of the MiniScenes stream ``seed`` (deterministic); arrays are H×W. Introduced in notebook 00."""
    _check_size("render_scene", height, width)
    if not isinstance(supersample, (int, np.integer)) or not 1 <= supersample <= 4:
        raise ValueError(f"render_scene: `supersample` must be an int in [1, 4], got {supersample!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    room, objects, window, light, materials = _random_layout(rng)
    K, pos, cam_to_world = _random_camera(rng, height, width, room)
    ambient = rng.uniform(0.25, 0.4)

    # geometry from one ray through each pixel centre
    cam, dirs = _pixel_rays(K, cam_to_world, height, width, 1)
    t, label, normal_w, _ = _trace(pos, dirs, room, objects, window)
    hit = np.isfinite(t)
    ray_len = np.linalg.norm(cam, axis=1)  # the ray direction was normalised: planar depth = t / |K^-1 p|
    depth = np.where(hit, t / ray_len, 0.0)
    normal_cv = normal_w @ cam_to_world  # world -> OpenCV camera frame
    normals = normal_cv * np.array([1.0, -1.0, -1.0])  # -> x right, y up, z toward the viewer
    normals[~hit] = 0.0

    # colour from supersampled rays, box-filtered
    _, sdirs = _pixel_rays(K, cam_to_world, height, width, supersample)
    st, _, snormal, ssurface = _trace(pos, sdirs, room, objects, window)
    srgb = _shade(pos, sdirs, st, snormal, ssurface, room, objects, materials, light, ambient)
    s = supersample
    rgb = srgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    image = np.round(np.power(rgb, 1 / _GAMMA) * 255).astype(np.uint8)  # mild gamma for display

    return Scene(
        image=image,
        depth=depth.reshape(height, width).astype(np.float32),
        normals=normals.reshape(height, width, 3).astype(np.float32),
        mask=hit.reshape(height, width),
        label=label.reshape(height, width),
        K=K.astype(np.float32),
    )


# ----------------------------------------------------------------------------------------------
# captions: what a text-to-image model is told about a view

_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"), (245, "blue"), (290, "purple"),
         (340, "pink"), (360, "red"))
_NUMBERS = {2: "two", 3: "three"}


def colour_name(rgb) -> str:
    """A plain colour word for an RGB triple in [0, 1] (grey/white/black by saturation, else by hue). Introduced in notebook 01."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.shape != (3,) or not np.all(np.isfinite(rgb)) or rgb.min() < 0 or rgb.max() > 1:
        raise ValueError(f"colour_name: `rgb` must be 3 values in [0, 1], got {rgb!r}")
    hi, lo = rgb.max(), rgb.min()
    if hi < 0.25:
        return "black"
    if (hi - lo) / hi < 0.15:
        return "white" if lo > 0.85 else "grey"
    r, g, b = rgb
    hue = np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360
    name = next(n for edge, n in _HUES if hue < edge)
    return "brown" if name == "orange" and hi < 0.55 else name


def _seen_colour(texture) -> str:
    return colour_name(np.power(texture.base, 1 / _GAMMA))  # the colour as the image shows it, before shading


def _phrase(kind: str, texture, count: int) -> str:
    words = (["checkered"] if texture.kind == "checker" else []) + [_seen_colour(texture)]
    noun = {"sphere": "ball", "box": "box"}[kind]
    noun = noun + ("es" if noun.endswith("x") else "s") if count > 1 else noun
    article = _NUMBERS.get(count, "an" if words[0][0] in "aeiou" else "a")
    return " ".join([article] + words + [noun])


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_caption(seed: int, index: int, height: int = 64, width: int = 64, max_chars: int = 75,
                  min_area: float = 0.02) -> str:
    """A short caption of what ``render_scene(seed, index, height, width)`` shows, e.g. "a red ball and two grey boxes in
    a room with green walls" (objects covering ≥ ``min_area`` of the view, largest first; ≤ ``max_chars``; the tiny
    tokenizer spends one token a character and 2 on BOS/EOS, of 77). Introduced in notebook 01."""
    _check_size("scene_caption", height, width)
    if not isinstance(max_chars, (int, np.integer)) or max_chars < 30:  # "a room with yellow walls" always fits
        raise ValueError(f"scene_caption: `max_chars` must be an int ≥ 30, got {max_chars!r}")
    if not 0 <= min_area < 1:
        raise ValueError(f"scene_caption: `min_area` must be in [0, 1), got {min_area!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    room, objects, window, _, materials = _random_layout(rng)  # the same draws as render_scene, so the same view
    K, pos, cam_to_world = _random_camera(rng, height, width, room)
    _, dirs = _pixel_rays(K, cam_to_world, height, width, 1)  # the render's geometry rays: the same view
    t, _, _, surface = _trace(pos, dirs, room, objects, window)
    area = np.bincount(surface[np.isfinite(t)], minlength=3 + len(objects)) / len(t)
    seen = [k for k in np.argsort(-area[3:], kind="stable") if area[3 + k] >= min_area]
    groups: dict[tuple, list] = {}  # (kind, checkered, colour) -> [kind, texture, count], largest group first
    for k in seen:
        kind, _, _, texture = objects[k]
        groups.setdefault((kind, texture.kind == "checker", _seen_colour(texture)), [kind, texture, 0])[2] += 1
    things = [_phrase(kind, texture, n) for kind, texture, n in groups.values()]
    room_parts = [f"{_seen_colour(materials[1])} walls"] + (["a window"] if not np.isfinite(t).all() else [])
    for n_things in range(len(things), -1, -1):  # drop the window, then the smallest objects, until it fits
        for n_room in (len(room_parts), 1):
            room_text = "a room with " + _join(room_parts[:n_room])
            caption = (_join(things[:n_things]) + " in " + room_text) if n_things else room_text
            if len(caption) <= max_chars or (not n_things and n_room == 1):
                return caption
