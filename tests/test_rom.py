"""Weight ROM images and their manifest (docs/design.md section 6; lane layout of docs/design.md 4.2)."""

import hashlib
import json
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.golden.model import FloatLayer, QuantLayer, QuantModel
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.rom import model_from_images, read_images, write_images

MEMS = ("weight", "k", "bias")


# -- helpers ---------------------------------------------------------------------------------------

def ceil_div(a, b):
    return -(-a // b)


def random_model(seed, sizes, ps, spec=QuantSpec(), relu_last=False):
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i}", rng.normal(0, 0.7, (sizes[i + 1], sizes[i])),
                         rng.normal(0, 0.3, sizes[i + 1])) for i in range(len(sizes) - 1)]
    return compress_permdiag(layers, ps, spec, relu_last=relu_last)


def ref_dense(layer):
    """Dense integer weight matrix from k and q by the docs/design.md 4.1 formula (Python ints)."""
    mat = layer.matrix
    (m, n), p = mat.shape, mat.p
    W = [[0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            I, r, J, c = i // p, i % p, j // p, j % p
            if c == (r + int(mat.k[I, J])) % p:
                W[i][j] = int(mat.q[I, J, r])
    return W


def read_words(path, width, signed):
    """Parse a $readmemh file independently: one fixed-width lower-case hex word per line."""
    text = path.read_text(encoding="ascii")
    assert text.endswith("\n"), path.name
    lines = text[:-1].split("\n")
    nd = ceil_div(width, 4)
    out = []
    for line in lines:
        assert re.fullmatch(f"[0-9a-f]{{{nd}}}", line), f"{path.name}: {line!r}"
        v = int(line, 16)
        assert v < 2 ** width, f"{path.name}: {line!r} wider than {width} bits"
        if signed and v >= 2 ** (width - 1):
            v -= 2 ** width
        out.append(v)
    return out


def write(tmp_path, model, cfg, name="rom"):
    folder = tmp_path / name
    folder.mkdir()
    man = write_images(folder, model, cfg)
    return folder, man


def entry(man, pe, lane, mem):
    hits = [e for e in man["images"] if (e["pe"], e["lane"], e["memory"]) == (pe, lane, mem)]
    assert len(hits) == 1, (pe, lane, mem)
    return hits[0]


def expected_lane_words(model, cfg):
    """{memory: [[word per address] per lane g]} from the layout of docs/design.md 4.2 and rom.py."""
    nl = cfg.n_pe * cfg.lanes
    words = {mem: [[] for _ in range(nl)] for mem in MEMS}
    for layer in model.layers:
        mat = layer.matrix
        (m, n), p = mat.shape, mat.p
        mb, nb = ceil_div(m, p), ceil_div(n, p)
        B = ceil_div(mb, nl)
        W = ref_dense(layer)
        for g in range(nl):
            w = [0] * (nb * p * B)
            kk = [0] * (nb * B)
            bb = [0] * (B * p)
            for t in range(B):
                I = t * nl + g
                if I >= mb:
                    continue
                for j in range(nb * p):
                    J, c = divmod(j, p)
                    r = (c - int(mat.k[I, J])) % p
                    if I * p + r < m and j < n:
                        w[t * nb * p + j] = W[I * p + r][j]
                for J in range(nb):
                    kk[t * nb + J] = int(mat.k[I, J])
                for r in range(p):
                    if I * p + r < m:
                        bb[t * p + r] = int(layer.bias[I * p + r])
            words["weight"][g] += w
            words["k"][g] += kk
            words["bias"][g] += bb
    return words


def assert_same_model(a, b, msg):
    assert b.method == a.method, msg
    assert len(a.layers) == len(b.layers), msg
    for la, lb in zip(a.layers, b.layers):
        assert lb.name == la.name, msg
        assert lb.shape == la.shape and lb.matrix.p == la.matrix.p, msg
        assert np.array_equal(lb.matrix.k, la.matrix.k), f"{msg}: {la.name}.k"
        assert np.issubdtype(lb.matrix.q.dtype, np.integer), msg
        assert np.array_equal(lb.matrix.q, la.matrix.q), f"{msg}: {la.name}.q"
        assert np.array_equal(lb.bias, la.bias), f"{msg}: {la.name}.bias"
        assert lb.fmts == la.fmts, f"{msg}: {la.name} formats"
        assert lb.relu == la.relu, msg


# sizes (inputs, hidden..., outputs), block size per layer, n_pe, lanes
CASES = [
    (0, [6, 5], [1], 1, 1),
    (1, [7, 9, 4], [3, 2], 2, 1),
    (2, [12, 10, 8, 3], [5, 3, 1], 2, 2),
    (3, [9, 13, 5], [6, 7], 1, 3),
    (4, [16, 16, 10], [4, 8], 4, 4),          # more lanes (16) than block-rows
    (5, [5, 3, 2], [7, 5], 3, 2),             # p larger than the layer
    (6, [20, 17, 11], [3, 6], 1, 1),
    (7, [10, 31, 6], [2, 9], 5, 1),
    (8, [8, 8], [1], 4, 2),                   # p = 1: dense, 1-bit k words
    (9, [11, 23, 7, 2], [1, 5, 3], 2, 5),
]


# -- round trip and contents -----------------------------------------------------------------------

@pytest.mark.parametrize("seed, sizes, ps, n_pe, lanes", CASES)
def test_round_trip(tmp_path, seed, sizes, ps, n_pe, lanes):
    spec = [QuantSpec(), QuantSpec(act=Fixed(12, 6), weight=8, bias=12),
            QuantSpec(act=Fixed(8, 3), weight=6, bias=10)][seed % 3]
    model = random_model(seed, sizes, ps, spec, relu_last=bool(seed % 2))
    cfg = EngineConfig(n_pe, lanes, scan_width=4)
    folder, _ = write(tmp_path, model, cfg)
    back = model_from_images(folder)
    assert_same_model(model, back, f"seed {seed}")
    # and the rebuilt model computes the same
    x = np.random.default_rng(seed).integers(-300, 300, size=(3, sizes[0]))
    assert np.array_equal(back.forward(x), model.forward(x)), f"seed {seed}"


@pytest.mark.parametrize("seed, sizes, ps, n_pe, lanes", CASES)
def test_image_contents(tmp_path, seed, sizes, ps, n_pe, lanes):
    model = random_model(seed, sizes, ps)
    cfg = EngineConfig(n_pe, lanes)
    folder, man = write(tmp_path, model, cfg)
    want = expected_lane_words(model, cfg)
    widths = {"weight": max(l.fmts.weight.bits for l in model.layers),
              "bias": max(l.fmts.bias.bits for l in model.layers),
              "k": max([1] + [(l.matrix.p - 1).bit_length() for l in model.layers])}
    for pe in range(n_pe):
        for lane in range(lanes):
            g = pe * lanes + lane
            for mem in MEMS:
                e = entry(man, pe, lane, mem)
                assert e["width"] == widths[mem], f"seed {seed}: {e['file']}"
                got = read_words(folder / e["file"], widths[mem], signed=mem != "k")
                assert got == want[mem][g], f"seed {seed}: {e['file']}"
    # the layers follow one another: each base is the sum of the previous layers' depths
    nl = n_pe * lanes
    base = {mem: 0 for mem in MEMS}
    for layer, d in zip(model.layers, man["layers"]):
        mb, nb = layer.matrix.blocks
        p = layer.matrix.p
        B = ceil_div(mb, nl)
        pl = d["placement"]
        assert pl["slots"] == B
        depth = {"weight": nb * p * B, "k": nb * B, "bias": B * p}
        for mem in MEMS:
            assert pl[f"{mem}_base"] == base[mem] and pl[f"{mem}_depth"] == depth[mem], \
                f"seed {seed}: {d['name']} {mem}"
            base[mem] += depth[mem]
    for mem in MEMS:
        assert man["memories"][mem]["depth"] == base[mem]


def test_hand_worked_images(tmp_path):
    # 3 x 4, p = 2: blocks 2 x 2.  k = [[1, 0], [1, 1]].
    # block (0,0) k=1: W[0][1] = -1, W[1][0] = 5;  block (0,1) k=0: W[0][2] = -32768, W[1][3] = 7
    # block (1,0) k=1: W[2][1] = 32767 (row 3 is padding);  block (1,1) k=1: W[2][3] = 2
    k = np.array([[1, 0], [1, 1]])
    q = np.array([[[-1, 5], [-32768, 7]], [[32767, 0], [2, 0]]], dtype=np.int64)
    mat = PermDiag((3, 4), 2, k, q)
    assert mat.to_dense().tolist() == [[0, -1, -32768, 0], [5, 0, 0, 7], [0, 32767, 0, 2]]
    fmts = LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(12, 8), Fixed(16, 8), 2)
    model = QuantModel([QuantLayer("fc", mat, np.array([-2, 2047, -2048]), fmts, False)])
    # two lanes (1 PE x 2): B = 1; lane 0 holds block-row 0, lane 1 block-row 1
    folder, man = write(tmp_path, model, EngineConfig(1, 2))
    lines = lambda name: (folder / name).read_text().split("\n")
    # weight address t*N'*p + j = j: column j's weight in the lane's block-row
    assert lines("pe0_lane0_weight.hex") == ["0005", "ffff", "8000", "0007", ""]
    assert lines("pe0_lane1_weight.hex") == ["0000", "7fff", "0000", "0002", ""]
    assert lines("pe0_lane0_k.hex") == ["1", "0", ""]
    assert lines("pe0_lane1_k.hex") == ["1", "1", ""]
    assert lines("pe0_lane0_bias.hex") == ["ffe", "7ff", ""]
    assert lines("pe0_lane1_bias.hex") == ["800", "000", ""]
    # one lane: B = 2, weight address t*4 + j, k address t*2 + J
    folder1, _ = write(tmp_path, model, EngineConfig(1, 1), name="one")
    assert (folder1 / "pe0_lane0_weight.hex").read_text().split() == \
        ["0005", "ffff", "8000", "0007", "0000", "7fff", "0000", "0002"]
    assert (folder1 / "pe0_lane0_k.hex").read_text().split() == ["1", "0", "1", "1"]
    assert (folder1 / "pe0_lane0_bias.hex").read_text().split() == ["ffe", "7ff", "800", "000"]
    assert_same_model(model, model_from_images(folder1), "one lane")
    assert_same_model(model, model_from_images(folder), "two lanes")
    # two lane groups of one PE x 1 lane: G = 1, B = 2; group k holds the input blocks J with
    # J mod 2 = k (N_k = 1), weight address t*N_k*p + i*p + c = t*2 + c, k address t
    folder2, man2 = write(tmp_path, model, EngineConfig(2, 1, groups=2), name="groups")
    words = lambda name: (folder2 / name).read_text().split()
    assert words("pe0_lane0_weight.hex") == ["0005", "ffff", "0000", "7fff"]   # J = 0
    assert words("pe1_lane0_weight.hex") == ["8000", "0007", "0000", "0002"]   # J = 1
    assert words("pe0_lane0_k.hex") == ["1", "1"]
    assert words("pe1_lane0_k.hex") == ["0", "1"]
    # every group holds group 0's bias words (only group 0's are read)
    assert words("pe0_lane0_bias.hex") == words("pe1_lane0_bias.hex") == ["ffe", "7ff", "800",
                                                                          "000"]
    assert man2["config"]["groups"] == 2
    assert_same_model(model, model_from_images(folder2), "two groups")


@pytest.mark.parametrize("seed, sizes, ps, n_pe, lanes, groups", [
    (20, [24, 17, 9], [3, 3], 4, 2, 2),
    (21, [40, 30], [4], 4, 1, 4),      # N' = 10 over 4 groups: lists of 3, 3, 2, 2 blocks
    (22, [9, 20, 5], [2, 2], 2, 3, 2),
])
def test_round_trip_lane_groups(tmp_path, seed, sizes, ps, n_pe, lanes, groups):
    model = random_model(seed, sizes, ps)
    folder, man = write(tmp_path, model, EngineConfig(n_pe, lanes, groups=groups))
    assert man["config"]["groups"] == groups
    assert_same_model(model, model_from_images(folder), f"seed {seed}")


def test_lane_groups_refuse_differing_bias_copies(tmp_path):
    model = random_model(20, [24, 17, 9], [3, 3])
    folder, man = write(tmp_path, model, EngineConfig(4, 2, groups=2))
    path = folder / "pe2_lane0_bias.hex"       # group 1's copy of lane 0's biases
    words = path.read_text().split("\n")
    words[0] = "0" * len(words[0]) if words[0].strip("0") else "1".rjust(len(words[0]), "0")
    path.write_text("\n".join(words))
    entry = next(e for e in man["images"] if e["file"] == path.name)
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(PermdealError, match="bias memories of the lane groups differ"):
        model_from_images(folder)


@pytest.mark.parametrize("seed, sizes, ps, n_pe, lanes, counts", [
    (30, [40, 36, 24, 20], [4, 4, 4], 4, 2, (1, 2, 4)),   # K = 4: m = 4, 2, 1
    (31, [33, 50, 17], [3, 3], 4, 1, (4, 1)),
    (32, [20, 12, 30], [5, 3], 2, 3, (2, 1)),             # K_l = 1 may follow another p
])
def test_per_layer_groups_layout_and_round_trip(tmp_path, seed, sizes, ps, n_pe, lanes, counts):
    """Per-layer lane groups (docs/design.md 4.2): layer l's group j spans the hardware groups
    j, j + K_l, ...; every weight and k word and group 0's bias words where an independent
    statement of the layout puts them, and the images read back to the model."""
    model = random_model(seed, sizes, ps)
    cfg = EngineConfig.with_layer_groups(EngineConfig(n_pe, lanes), counts)
    folder, man = write(tmp_path, model, cfg)
    assert man["config"]["groups"] == max(counts) and man["config"]["layer_groups"] == list(counts)
    nl, K = n_pe * lanes, max(counts)
    G = nl // K
    files = {}
    for g in range(nl):
        for mem in MEMS:
            e = entry(man, g // lanes, g % lanes, mem)
            files[g, mem] = read_words(folder / e["file"], e["width"], mem != "k")
    for layer, d, kl in zip(model.layers, man["layers"], counts):
        pl, mat, p = d["placement"], layer.matrix, layer.matrix.p
        (mb, nb), span = mat.blocks, K // kl
        B = ceil_div(mb, span * G)
        nk = ceil_div(nb, kl)
        assert pl["slots"] == B and pl["bias_depth"] == B * p
        for I in range(mb):
            hp, t = I % (span * G), I // (span * G)
            for J in range(nb):
                j, i = J % kl, J // kl
                g = (j + (hp // G) * kl) * G + hp % G
                assert files[g, "k"][pl["k_base"] + t * nk + i] == mat.k[I, J]
                for c in range(p):
                    r = (c - int(mat.k[I, J])) % p
                    assert files[g, "weight"][pl["weight_base"] + t * nk * p + i * p + c] == \
                        mat.q[I, J, r], (I, J, c)
        for row in range(layer.shape[0]):
            I, r = divmod(row, p)
            t, hp = divmod(I, span * G)
            for j in range(kl):         # every group holds the same words, in its lane h'
                g = (j + (hp // G) * kl) * G + hp % G
                assert files[g, "bias"][pl["bias_base"] + t * p + r] == layer.bias[row]
    assert_same_model(model, model_from_images(folder), f"seed {seed}")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(layer_groups=[1, 2, 4, 4]), "name 4 layers' counts for a network of 3"),
    (lambda c: c.update(layer_groups=[1, 3, 4]), "layer 1 must be a power of two"),
    (lambda c: c.update(groups=2), "layer 2 must be a power of two that divides the engine's 2"),
    (lambda c: c.update(layer_groups=[1, 2, 2]), "engine's count 4 must be the largest layer's, not 2"),
    (lambda c: c.update(layer_groups=[4, 4, 4]), "layer_groups must name differing counts"),
    (lambda c: c.update(layer_groups=[1, "2", 4]), r"layer_groups\[1\] must be a whole number"),
    (lambda c: c.update(layer_groups=[2, 1, 4]), "placement"),   # the images' placements differ
])
def test_per_layer_groups_refuse_inconsistent_manifests(tmp_path, change, message):
    model = random_model(30, [40, 36, 24, 20], [4, 4, 4])
    cfg = EngineConfig.with_layer_groups(EngineConfig(4, 2), (1, 2, 4))
    folder, man = write(tmp_path, model, cfg)
    change(man["config"])
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(PermdealError, match=message) as e:
        model_from_images(folder)
    assert "\n" not in str(e.value)


def test_mixed_widths_round_trip(tmp_path):
    """Layers with different weight and bias widths share one memory word width."""
    rng = np.random.default_rng(42)
    l1 = FloatLayer("a", rng.normal(0, 1, (9, 7)), rng.normal(0, 1, 9))
    l2 = FloatLayer("b", rng.normal(0, 1, (5, 9)), rng.normal(0, 1, 5))
    m1 = compress_permdiag([l1], 3, QuantSpec(weight=Fixed(6, 3), bias=Fixed(8, 4),
                                              allow_saturation=True), relu_last=True)
    m2 = compress_permdiag([l2], 2, QuantSpec(weight=Fixed(16, 12), bias=Fixed(20, 12),
                                              allow_saturation=True))
    model = QuantModel(m1.layers + m2.layers)
    assert (model.layers[0].matrix.q < 0).any(), "narrow layer has negative weights"
    cfg = EngineConfig(2, 2)
    folder, man = write(tmp_path, model, cfg)
    assert man["memories"]["weight"]["width"] == 16 and man["memories"]["bias"]["width"] == 20
    assert man["memories"]["k"]["width"] == 2
    want = expected_lane_words(model, cfg)
    for e in man["images"]:
        got = read_words(folder / e["file"], e["width"], e["memory"] != "k")
        assert got == want[e["memory"]][e["pe"] * 2 + e["lane"]], e["file"]
    assert_same_model(model, model_from_images(folder), "mixed widths")


# -- names, manifest, file format ------------------------------------------------------------------

def test_file_names(tmp_path):
    model = random_model(0, [6, 5], [2])
    folder, man = write(tmp_path, model, EngineConfig(2, 3))
    want = sorted(f"pe{pe}_lane{lane}_{mem}.hex" for pe in (0, 1) for lane in (0, 1, 2)
                  for mem in ("weight", "k", "bias"))
    assert sorted(e["file"] for e in man["images"]) == want
    # nothing else in the folder (atomic writes leave no temporary files)
    assert sorted(p.name for p in folder.iterdir()) == sorted(want + ["manifest.json"])
    assert {(e["file"], e["pe"], e["lane"], e["memory"]) for e in man["images"]} == {
        (f"pe{pe}_lane{lane}_{mem}.hex", pe, lane, mem)
        for pe in (0, 1) for lane in (0, 1, 2) for mem in MEMS}


def test_file_names_zero_padded(tmp_path):
    model = random_model(0, [4, 3], [1])
    folder, man = write(tmp_path, model, EngineConfig(11, 1))
    names = sorted(e["file"] for e in man["images"] if e["memory"] == "k")
    assert names == [f"pe{pe:02d}_lane0_k.hex" for pe in range(11)]
    assert "pe07_lane0_weight.hex" in {e["file"] for e in man["images"]}
    folder2, man2 = write(tmp_path, model, EngineConfig(1, 12), name="b")
    assert "pe0_lane03_bias.hex" in {e["file"] for e in man2["images"]}
    assert "pe0_lane11_bias.hex" in {e["file"] for e in man2["images"]}


@pytest.mark.parametrize("seed, sizes, ps, n_pe, lanes", CASES[:6])
def test_manifest_matches_files(tmp_path, seed, sizes, ps, n_pe, lanes):
    model = random_model(seed, sizes, ps)
    cfg = EngineConfig(n_pe, lanes, scan_width=2)
    folder, man = write(tmp_path, model, cfg)
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk == man
    assert man["kind"] == "permdeal-rom"
    assert man["generator"].startswith("permdeal")
    assert man["config"] == {"n_pe": n_pe, "lanes": lanes, "scan_width": 2}
    assert len(man["images"]) == 3 * n_pe * lanes
    for e in man["images"]:
        data = (folder / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        lines = data.decode("ascii").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == e["depth"], e["file"]
        nd = ceil_div(e["width"], 4)
        assert all(re.fullmatch(f"[0-9a-f]{{{nd}}}", s) for s in lines[:-1]), e["file"]
        spec = man["memories"][e["memory"]]
        assert (spec["width"], spec["depth"]) == (e["width"], e["depth"])
        assert spec["signed"] == (e["memory"] != "k")
    for d, layer in zip(man["layers"], model.layers):
        m, n = layer.shape
        assert (d["out"], d["in"], d["p"]) == (m, n, layer.matrix.p)
        assert d["blocks"] == [ceil_div(m, layer.matrix.p), ceil_div(n, layer.matrix.p)]
        assert d["formats"]["weight"] == layer.fmts.weight.to_json()


# -- the reader refuses damaged folders -------------------------------------------------------------

@pytest.fixture
def rom(tmp_path):
    model = random_model(3, [9, 7, 5], [3, 2])
    folder, man = write(tmp_path, model, EngineConfig(2, 2))
    assert_same_model(model, model_from_images(folder), "intact folder")
    return folder, man


def refuses(folder, name):
    """Both readers refuse the folder with a PermdealError naming ``name``."""
    for reader in (read_images, model_from_images):
        with pytest.raises(PermdealError) as e:
            reader(folder)
        assert name in str(e.value), f"{reader.__name__}: {e.value}"
    return str(e.value)


def image_file(folder, man, mem, pe=1, lane=0):
    return folder / entry(man, pe, lane, mem)["file"]


@pytest.mark.parametrize("mem", MEMS)
def test_refuses_corrupt_digit(rom, mem):
    folder, man = rom
    path = image_file(folder, man, mem)
    data = bytearray(path.read_bytes())
    data[0] = ord("g")
    path.write_bytes(bytes(data))
    msg = refuses(folder, path.name)
    assert "line 1" in msg


@pytest.mark.parametrize("mem", MEMS)
def test_refuses_truncated(rom, mem):
    folder, man = rom
    path = image_file(folder, man, mem)
    lines = path.read_text().split("\n")
    path.write_text("\n".join(lines[:-2]) + "\n")  # last word gone
    refuses(folder, path.name)


def test_refuses_truncated_mid_line(rom):
    folder, man = rom
    path = image_file(folder, man, "weight")
    path.write_bytes(path.read_bytes()[:-3])
    refuses(folder, path.name)


def test_refuses_empty_image(rom):
    folder, man = rom
    path = image_file(folder, man, "bias", 0, 1)
    path.write_bytes(b"")
    refuses(folder, path.name)


@pytest.mark.parametrize("mem", MEMS)
def test_refuses_extra_line(rom, mem):
    folder, man = rom
    path = image_file(folder, man, mem)
    text = path.read_text()
    path.write_text(text + text.split("\n")[0] + "\n")
    refuses(folder, path.name)


@pytest.mark.parametrize("mem", MEMS)
def test_refuses_changed_valid_value(rom, mem):
    folder, man = rom
    path = image_file(folder, man, mem)
    lines = path.read_text().split("\n")
    first = lines[0]
    lines[0] = first[:-1] + ("1" if first[-1] == "0" else "0")  # still valid hex, in range
    path.write_text("\n".join(lines))
    msg = refuses(folder, path.name)
    assert "sha256" in msg


def test_refuses_uppercase_rewrite(rom):
    """Same values, different bytes: the checksum no longer matches."""
    folder, man = rom
    path = image_file(folder, man, "weight", 0, 0)
    text = path.read_text()
    assert text != text.upper(), "the image has a hex letter"
    path.write_text(text.upper())
    assert "sha256" in refuses(folder, path.name)


@pytest.mark.parametrize("mem", MEMS)
def test_refuses_missing_image(rom, mem):
    folder, man = rom
    path = image_file(folder, man, mem, 0, 1)
    path.unlink()
    msg = refuses(folder, path.name)
    assert "missing" in msg


def test_refuses_image_not_listed(rom):
    folder, man = rom
    man_path = folder / "manifest.json"
    m = json.loads(man_path.read_text())
    m["images"] = [e for e in m["images"] if not (e["pe"], e["lane"], e["memory"]) == (1, 1, "k")]
    man_path.write_text(json.dumps(m))
    msg = refuses(folder, "manifest.json")
    assert "PE 1 lane 1" in msg


def test_refuses_missing_manifest(rom):
    folder, _ = rom
    (folder / "manifest.json").unlink()
    refuses(folder, "manifest.json")


@pytest.mark.parametrize("field, delta", [("width", 1), ("width", -4), ("depth", 1), ("depth", -1)])
def test_refuses_entry_disagreeing_with_memory(rom, field, delta):
    folder, man = rom
    man_path = folder / "manifest.json"
    m = json.loads(man_path.read_text())
    target = entry(m, 1, 0, "weight")
    target[field] += delta
    man_path.write_text(json.dumps(m))
    refuses(folder, target["file"])


@pytest.mark.parametrize("mem, field, delta", [("weight", "width", -4), ("weight", "depth", 2),
                                               ("bias", "depth", -1), ("k", "width", 4),
                                               ("bias", "width", 8)])
def test_refuses_memory_sizes_disagreeing_with_layers(rom, mem, field, delta):
    """Memory and image entries agree with each other but not with what the layer descriptions
    imply: the manifest and the field are named before any file is read."""
    folder, man = rom
    man_path = folder / "manifest.json"
    m = json.loads(man_path.read_text())
    m["memories"][mem][field] += delta
    for e in m["images"]:
        if e["memory"] == mem:
            e[field] += delta
    man_path.write_text(json.dumps(m))
    msg = refuses(folder, "manifest.json")
    assert f"memories.{mem}.{field} is {man['memories'][mem][field] + delta}" in msg


def test_refuses_changed_checksum_in_manifest(rom):
    folder, man = rom
    man_path = folder / "manifest.json"
    m = json.loads(man_path.read_text())
    target = entry(m, 0, 1, "bias")
    target["sha256"] = "0" * 64
    man_path.write_text(json.dumps(m))
    assert "sha256" in refuses(folder, target["file"])


def test_refuses_value_wider_than_word(rom):
    """k words of a 2-bit memory are one hex digit: 'f' is valid hex but exceeds the width."""
    folder, man = rom
    assert man["memories"]["k"]["width"] == 2
    path = image_file(folder, man, "k")
    lines = path.read_text().split("\n")
    lines[1] = "f"
    path.write_text("\n".join(lines))
    refuses(folder, path.name)
