"""Firmware bundles built from a real classifier (tiny JEPA teacher + probe on PTB-XL) exported to ONNX and IR.

Checks what firmware teams rely on: every byte is hashed, the signature binds the manifest, the schema
rejects malformed manifests with the JSON path, the loader never crashes on garbage, the C header
carries the manifest's numbers exactly, and a killed build leaves nothing that verifies.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepa_edge.bundle import (
    BundleBuilder,
    BundleError,
    backend_for_role,
    generate_header,
    new_keypair,
    open_bundle,
    update_bundle,
    verify_bundle,
)
from jepa_edge.bundle.manifest import manifest_bytes
from jepa_edge.data.datasets import preprocess_set
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.models.checkpoint import load_classifier

REPO = Path(__file__).resolve().parents[1]
ONNX_TOL, IR_TOL = 1e-4, 1e-3


# -- fixtures: one real exported classifier, one good bundle ---------------------------------------
@pytest.fixture(scope="module")
def exported(ecg_classifier_dir: Path, ptbxl_super, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """ONNX + OpenVINO IR of the real classifier, and golden vectors: 4 preprocessed test-fold records."""
    from jepa_edge.runtimes.export import export_onnx, export_openvino

    model, meta = load_classifier(ecg_classifier_dir)
    out = tmp_path_factory.mktemp("export")
    onnx_path = export_onnx(model, out / "model.onnx", opset=18, dynamo=False)
    xml_path = export_openvino(onnx_path, out / "model.xml")
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    test = ptbxl_super["test"]
    x = preprocess_set(test.signals[:4], test.fs, pre)
    with torch.no_grad():
        logits, emb = model(torch.from_numpy(x))
    params = sum(p.numel() for p in model.parameters())
    fields = {
        "model": {"name": "ptbxl-super-vit-tiny", "task": meta["task"], "modality": "ecg", "encoder": meta["encoder"],
                  "head": meta["head"], "parameters": int(params),
                  "source_checkpoint_sha256": meta["weights_sha256"]},
        "target": {"kind": "cart-cpu", "profile": None, "profile_data": None},
        "runtimes": {"openvino": None, "onnxruntime": None, "nncf": None, "tensorrt": None, "opset": 18},
        "calibration": None,
        "quantization": {"recipe": None, "precision": "fp32", "fallback_layers": []},
        "io": {"inputs": [{"name": "ecg", "shape": ["batch", pre.num_leads, pre.window], "dtype": "float32",
                           "layout": "(batch, leads, samples) float32"}],
               "outputs": [{"name": "logits", "shape": ["batch", len(meta["labels"])], "dtype": "float32"},
                           {"name": "embedding", "shape": ["batch", int(emb.shape[1])], "dtype": "float32"}]},
        "preprocessing": meta["preprocessing"],
        "labels": meta["labels"],
        "thresholds": meta["thresholds"],
    }
    return {"onnx": onnx_path, "xml": xml_path, "bin": xml_path.with_suffix(".bin"), "fields": fields,
            "inputs": x, "outputs": {"logits": logits.numpy(), "embedding": emb.numpy()},
            "raw": test.signals[:4], "fs": test.fs, "meta": meta}


def build(out: Path, exp: dict, sign_key: Path | None = None, **overrides) -> Path:
    with BundleBuilder(out, sign_key=sign_key) as b:
        b.add_file(exp["onnx"], "model/model.onnx", "onnx-fp32")
        b.add_file(exp["xml"], "openvino/model.xml", "openvino-fp32-xml")
        b.add_file(exp["bin"], "openvino/model.bin", "openvino-fp32-bin")
        b.set(**{**exp["fields"], **overrides})
        b.add_golden(exp["inputs"], exp["outputs"], {"onnx-fp32": ONNX_TOL, "openvino-fp32": IR_TOL})
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("keys")
    good = new_keypair(d / "release")
    other = new_keypair(d / "other")
    return {"private": good[0], "public": good[1], "other_public": other[1]}


@pytest.fixture(scope="module")
def signed_bundle(exported: dict, keys: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("signed") / "bundle", exported, sign_key=keys["private"])


@pytest.fixture
def bundle_copy(signed_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(signed_bundle, tmp_path / "bundle"))


def rewrite_manifest(bundle: Path, change) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_bytes(manifest_bytes(manifest))


# -- a good bundle ---------------------------------------------------------------------------------
def test_signed_bundle_verifies_and_golden_vectors_rerun_on_local_backends(signed_bundle: Path, keys: dict) -> None:
    report = verify_bundle(signed_bundle, public_key=keys["public"], require_signature=True)
    assert report.ok, report.problems
    golden = [c for c in report.checks if c.kind == "golden"]
    # both artefacts x both outputs were really executed here and compared with their own tolerance
    assert {c.subject for c in golden} == {"model/model.onnx (onnx-fp32)", "openvino/model.xml (openvino-fp32-xml)"}
    assert len(golden) == 4 and all(c.ok for c in golden)
    listed = {e["path"] for e in json.loads((signed_bundle / "manifest.json").read_text())["files"]}
    on_disk = {p.relative_to(signed_bundle).as_posix() for p in signed_bundle.rglob("*") if p.is_file()}
    assert on_disk - listed == {"manifest.json", "manifest.json.sig"}
    assert {"include/jepa_edge_model.h", "golden/inputs.npy", "golden/logits.npy", "golden/embedding.npy"} <= listed


def test_open_bundle_gives_preprocessing_labels_and_an_engine(signed_bundle: Path, exported: dict, keys: dict) -> None:
    bundle = open_bundle(signed_bundle, public_key=keys["public"], require_signature=True)
    assert bundle.labels == exported["meta"]["labels"]
    np.testing.assert_array_equal(bundle.thresholds, exported["meta"]["thresholds"])
    # the manifest's preprocessing, applied to the raw records, reproduces the golden inputs bit for bit
    pre = bundle.preprocessing
    np.testing.assert_array_equal(preprocess_set(exported["raw"], exported["fs"], pre), bundle.golden()[0])
    engine = bundle.engine()  # OpenVINO IR is preferred over ONNX on a CPU cart
    assert engine.info()["backend"] == "openvino"
    np.testing.assert_allclose(engine(exported["inputs"]), exported["outputs"]["logits"], atol=IR_TOL)
    onnx = bundle.engine(backend="onnxruntime")
    np.testing.assert_allclose(onnx.outputs(exported["inputs"])["embedding"], exported["outputs"]["embedding"],
                               atol=ONNX_TOL)
    with pytest.raises(BundleError, match="not an executable artefact"):
        bundle.engine(role="openvino-fp32-bin")
    with pytest.raises(BundleError, match="'onnx-fp32' runs on onnxruntime, not openvino"):
        bundle.engine(role="onnx-fp32", backend="openvino")
    with pytest.raises(BundleError, match="no file with role 'tensorrt-engine'"):
        bundle.engine(role="tensorrt-engine")


def test_building_twice_gives_identical_bytes(signed_bundle: Path, exported: dict, keys: dict, tmp_path: Path) -> None:
    again = build(tmp_path / "again", exported, sign_key=keys["private"])
    for name in ("manifest.json", "manifest.json.sig"):
        assert (again / name).read_bytes() == (signed_bundle / name).read_bytes()


# -- integrity -------------------------------------------------------------------------------------
def test_one_byte_changed_in_any_file_fails_naming_that_file(bundle_copy: Path, keys: dict) -> None:
    files = sorted(p for p in bundle_copy.rglob("*") if p.is_file())
    assert len(files) >= 9
    for path in files:
        rel = path.relative_to(bundle_copy).as_posix()
        original = path.read_bytes()
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        path.write_bytes(bytes(changed))
        report = verify_bundle(bundle_copy, public_key=keys["public"])
        assert not report.ok, rel
        # a changed manifest.json shows as a signature that no longer matches it (or as invalid JSON / schema)
        assert any(problem.startswith(rel + ":") or f" {rel} " in problem for problem in report.problems), \
            (rel, report.problems)
        with pytest.raises(BundleError, match=rel.replace(".", r"\.")):
            open_bundle(bundle_copy, public_key=keys["public"])
        path.write_bytes(original)
    assert verify_bundle(bundle_copy, public_key=keys["public"], run_golden=False).ok


def test_added_removed_or_linked_files_fail(bundle_copy: Path, keys: dict) -> None:
    (bundle_copy / "model" / "extra.onnx").write_bytes(b"not in the manifest")
    report = verify_bundle(bundle_copy, public_key=keys["public"], run_golden=False)
    assert report.problems == ["model/extra.onnx: not listed in manifest.json (added after the build)"]
    (bundle_copy / "model" / "extra.onnx").unlink()
    (bundle_copy / "golden" / "logits.npy").unlink()
    report = verify_bundle(bundle_copy, public_key=keys["public"], run_golden=False)
    assert report.problems == ["golden/logits.npy: listed in manifest.json but missing"]
    (bundle_copy / "golden" / "logits.npy").symlink_to(bundle_copy / "golden" / "embedding.npy")
    assert "is a link" in " ".join(verify_bundle(bundle_copy, run_golden=False).problems)


def test_golden_mismatch_beyond_tolerance_fails(exported: dict, tmp_path: Path) -> None:
    wrong = dict(exported, outputs={**exported["outputs"], "logits": exported["outputs"]["logits"] + 0.01})
    report = verify_bundle(build(tmp_path / "wrong", wrong))
    assert not report.ok
    bad = [c for c in report.checks if c.ok is False]
    assert {c.subject for c in bad} == {"model/model.onnx (onnx-fp32)", "openvino/model.xml (openvino-fp32-xml)"}
    assert all(c.detail.startswith("logits: max |diff|") for c in bad)


# -- signatures ------------------------------------------------------------------------------------
def test_wrong_key_or_missing_signature_fails(signed_bundle: Path, bundle_copy: Path, keys: dict) -> None:
    wrong = verify_bundle(signed_bundle, public_key=keys["other_public"], run_golden=False)
    assert not wrong.ok and wrong.problems[0].startswith("manifest.json.sig: does not match")
    no_key = verify_bundle(signed_bundle, require_signature=True, run_golden=False)
    assert not no_key.ok and "no public key was given" in no_key.problems[0]
    unchecked = verify_bundle(signed_bundle, run_golden=False)
    assert unchecked.ok and any(c.kind == "signature" and c.ok is None for c in unchecked.checks)

    (bundle_copy / "manifest.json.sig").unlink()
    missing = verify_bundle(bundle_copy, public_key=keys["public"], require_signature=True, run_golden=False)
    assert missing.problems == ["manifest.json.sig: missing, but a public key was given to check it"]
    with pytest.raises(BundleError, match="manifest.json.sig: missing"):
        open_bundle(bundle_copy, public_key=keys["public"])
    # a re-written manifest (e.g. a swapped hash for a swapped model) cannot keep a valid signature
    (bundle_copy / "manifest.json.sig").write_bytes((signed_bundle / "manifest.json.sig").read_bytes())
    rewrite_manifest(bundle_copy, lambda m: m["labels"].reverse())
    assert not verify_bundle(bundle_copy, public_key=keys["public"], run_golden=False).ok


def test_keys_are_ed25519_pem_with_a_private_file_only_the_owner_reads(keys: dict, tmp_path: Path) -> None:
    assert os.stat(keys["private"]).st_mode & 0o777 == 0o600
    assert keys["private"].read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert keys["public"].read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(BundleError, match="already exists"):
        new_keypair(keys["private"].with_suffix(""))
    (tmp_path / "rsa.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(BundleError, match="rsa.pem: not a PEM public key"):
        open_bundle(tmp_path, public_key=tmp_path / "rsa.pem")


# -- schema ----------------------------------------------------------------------------------------
SCHEMA_CASES = [
    ("missing labels", lambda m: m.pop("labels"), r"\$: 'labels' is a required property"),
    ("wrong type", lambda m: m["model"].__setitem__("parameters", "many"), r"\$\.model\.parameters: 'many' is not"),
    ("bad hash", lambda m: m["files"][0].__setitem__("sha256", "xyz"), r"\$\.files\[0\]\.sha256: 'xyz' does not"),
    ("path escape", lambda m: m["files"][1].__setitem__("path", "../../etc/passwd"), r"\$\.files\[1\]\.path"),
    ("newer version", lambda m: m.__setitem__("schema_version", 2), r"version 2 is newer than this toolkit"),
    ("extra field", lambda m: m.__setitem__("built_at", "today"), r"'built_at' was unexpected"),
    ("unknown lead", lambda m: m["preprocessing"]["leads"].__setitem__(0, "X1"), r"\$\.preprocessing\.leads\[0\]"),
    ("thresholds", lambda m: m["thresholds"].pop(), r"\$\.thresholds: 4 thresholds for 5 labels"),
    ("tolerance role", lambda m: m["golden"]["tolerances"].__setitem__("onnx-qdq", 0.1),
     r"\$\.golden\.tolerances\.onnx-qdq: no file with role"),
    ("sos", lambda m: m["preprocessing"]["sos"][0].__setitem__(0, 0.5), r"stored SOS coefficients do not match"),
]


@pytest.mark.parametrize("change,expected", [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES])
def test_schema_violations_give_clear_errors_with_the_json_path(bundle_copy: Path, change, expected: str) -> None:
    rewrite_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=r"bundle does not verify: manifest\.json: .*" + expected):
        open_bundle(bundle_copy)
    report = verify_bundle(bundle_copy)
    assert not report.ok and report.problems[0].startswith("manifest.json:")


def test_builder_refuses_bad_content_and_leaves_nothing(exported: dict, tmp_path: Path) -> None:
    out = tmp_path / "b"
    for bad_path in ("../x.onnx", "/abs.onnx", ".hidden", "manifest.json", "golden/inputs.npy"):
        with pytest.raises(BundleError, match="x.onnx|abs.onnx|hidden|reserved"), BundleBuilder(out) as b:
            b.add_file(b"x", bad_path, "onnx-fp32")
    with pytest.raises(BundleError, match="role 'onnx-fp32' already used"), BundleBuilder(out) as b:
        b.add_file(b"x", "a.onnx", "onnx-fp32")
        b.add_file(b"y", "b.onnx", "onnx-fp32")
    with pytest.raises(BundleError, match="'built_at' is not settable"), BundleBuilder(out) as b:
        b.set(built_at="now")
    with pytest.raises(BundleError, match="no golden vectors"), BundleBuilder(out) as b:
        b.add_file(exported["onnx"], "model.onnx", "onnx-fp32")
        b.set(**exported["fields"])
    with pytest.raises(BundleError, match=r"\$\.labels"), BundleBuilder(out) as b:
        b.add_file(exported["onnx"], "model.onnx", "onnx-fp32")
        b.set(**{**exported["fields"], "labels": "NORM"})
        b.add_golden(exported["inputs"], exported["outputs"], {"onnx-fp32": ONNX_TOL})
    assert list(tmp_path.iterdir()) == []  # no bundle, no half-built folder


# -- fuzzing: the loader only ever raises BundleError ----------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.just([]) | st.just({}),
    lambda inner: st.lists(inner, min_size=1, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, min_size=1, max_size=4),
    max_leaves=16,
)


def _mutate(manifest: dict, data: st.DataObject) -> dict:
    manifest = copy.deepcopy(manifest)
    node: object = manifest
    for _ in range(data.draw(st.integers(1, 5), label="depth")):
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        key = data.draw(st.sampled_from(keys), label="key")
        child = node[key]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans(), label="deeper"):
            node = child
            continue
        action = data.draw(st.sampled_from(["replace", "delete"]), label="action")
        if action == "delete" and isinstance(node, dict):
            del node[key]
        else:
            node[key] = data.draw(JSON, label="value")
        break
    return manifest


@pytest.fixture(scope="module")
def fuzz_bundle(signed_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(signed_bundle, tmp_path_factory.mktemp("fuzz") / "bundle"))


def _never_crashes(bundle: Path, raw: bytes) -> None:
    (bundle / "manifest.json").write_bytes(raw)
    try:
        opened = open_bundle(bundle)
        opened.preprocessing if opened.manifest["preprocessing"].get("kind") == "ecg" else None  # noqa: B018
    except BundleError:
        pass
    report = verify_bundle(bundle, run_golden=False)
    assert isinstance(report.ok, bool)


def test_a_broken_stored_profile_is_a_bundle_error(fuzz_bundle: Path, signed_bundle: Path) -> None:
    """Found by the fuzzer below: `target.profile_data` that is not a profile raised ProfileError, not BundleError."""
    manifest = json.loads((signed_bundle / "manifest.json").read_text())
    manifest["target"]["profile_data"] = {"": None}
    (fuzz_bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"\$\.target\.profile_data: .*not a device profile"):
        open_bundle(fuzz_bundle)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifest_never_crashes_the_loader(fuzz_bundle: Path, signed_bundle: Path, data) -> None:
    good = json.loads((signed_bundle / "manifest.json").read_text())
    mutated = _mutate(good, data)
    try:
        raw = json.dumps(mutated).encode()
    except (ValueError, RecursionError):
        return
    _never_crashes(fuzz_bundle, raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_garbage_manifest_bytes_never_crash_the_loader(fuzz_bundle: Path, raw: bytes) -> None:
    _never_crashes(fuzz_bundle, raw)


# -- C header --------------------------------------------------------------------------------------
C_PROGRAM = r"""
#include <stdio.h>
#include "jepa_edge_model.h"
int main(void) {
    int i;
    printf("fs %d\nwindow %d\nhop %d\n", JEPA_EDGE_FS_HZ, JEPA_EDGE_WINDOW_SAMPLES, JEPA_EDGE_HOP_SAMPLES);
    printf("window_s %.17g\nhop_s %.17g\nclip %.17g\n", JEPA_EDGE_WINDOW_S, JEPA_EDGE_HOP_S, JEPA_EDGE_CLIP);
    printf("normalised %d\n", JEPA_EDGE_NORMALISED);
    for (i = 0; i < JEPA_EDGE_NUM_LEADS; i++) printf("lead %s\n", jepa_edge_lead_names[i]);
    for (i = 0; i < JEPA_EDGE_NUM_SOS * 6; i++) printf("sos %.17g\n", jepa_edge_sos[i]);
    for (i = 0; i < JEPA_EDGE_NUM_LEADS; i++) printf("mean %.17g\nstd %.17g\n", jepa_edge_mean[i], jepa_edge_std[i]);
    for (i = 0; i < JEPA_EDGE_NUM_LABELS; i++) printf("label %s\nthreshold %.17g\n", jepa_edge_labels[i],
                                                      jepa_edge_thresholds[i]);
    printf("input %s", JEPA_EDGE_INPUT_0_NAME);
    for (i = 0; i < JEPA_EDGE_INPUT_0_RANK; i++) printf(" %lld", jepa_edge_input_0_shape[i]);
    printf("\noutput %s", JEPA_EDGE_OUTPUT_0_NAME);
    for (i = 0; i < JEPA_EDGE_OUTPUT_0_RANK; i++) printf(" %lld", jepa_edge_output_0_shape[i]);
    printf("\noutput %s", JEPA_EDGE_OUTPUT_1_NAME);
    for (i = 0; i < JEPA_EDGE_OUTPUT_1_RANK; i++) printf(" %lld", jepa_edge_output_1_shape[i]);
    printf("\nmodel %s\n", JEPA_EDGE_MODEL_NAME);
    return 0;
}
"""


def _compile_and_run(header_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no system C compiler (cc) on this machine")
    (tmp_path / "main.c").write_text(C_PROGRAM)
    exe = tmp_path / "main"
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(header_dir),
                    str(tmp_path / "main.c"), "-o", str(exe)], check=True, capture_output=True, text=True)
    out: dict[str, list[str]] = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True).stdout.decode("utf-8").splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out


def _expected_shape(shape: list) -> str:
    return " ".join(str(d) if isinstance(d, int) else "-1" for d in shape)


def test_c_header_compiles_and_prints_the_manifest_values(signed_bundle: Path, tmp_path: Path) -> None:
    manifest = json.loads((signed_bundle / "manifest.json").read_text())
    pre, io = manifest["preprocessing"], manifest["io"]
    got = _compile_and_run(signed_bundle / "include", tmp_path)
    assert got["fs"] == [str(pre["fs"])] and got["window"] == [str(pre["window"])] and got["hop"] == [str(pre["hop"])]
    assert [float(v) for v in got["window_s"] + got["hop_s"] + got["clip"]] == [pre["window_s"], pre["hop_s"],
                                                                                 pre["clip"]]
    assert got["lead"] == pre["leads"]
    assert [float(v) for v in got["sos"]] == [v for row in pre["sos"] for v in row]  # exact: %.17g round-trips
    assert got["normalised"] == ["1"] and pre["mean"] is not None
    assert [float(v) for v in got["mean"]] == pre["mean"] and [float(v) for v in got["std"]] == pre["std"]
    assert got["label"] == manifest["labels"] and [float(v) for v in got["threshold"]] == manifest["thresholds"]
    assert got["input"] == [f"ecg {_expected_shape(io['inputs'][0]['shape'])}"]
    assert got["output"] == [f"{t['name']} {_expected_shape(t['shape'])}" for t in io["outputs"]]
    assert got["model"] == [manifest["model"]["name"]]


def test_c_header_escapes_any_text_and_writes_identity_normalisation(signed_bundle: Path, tmp_path: Path) -> None:
    manifest = json.loads((signed_bundle / "manifest.json").read_text())
    manifest["labels"] = ['quote"d', "back\\slash", "tri??=graph", "ünïcödé", "tab\tnew\nline"]
    manifest["model"]["name"] = "*/ #define X"
    manifest["preprocessing"]["mean"] = manifest["preprocessing"]["std"] = None
    (tmp_path / "jepa_edge_model.h").write_text(generate_header(manifest))
    got = _compile_and_run(tmp_path, tmp_path)
    labels = "\n".join(f"label {v}" for v in manifest["labels"]).split("\n")  # the newline label prints 2 lines
    assert [f"label {v}" for v in got["label"][:4]] == labels[:4]
    assert got["normalised"] == ["0"] and set(got["mean"]) == {"0"} and set(got["std"]) == {"1"}
    assert got["model"] == ["*/ #define X"]


C_PREPROCESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "jepa_edge_model.h"
/* Firmware-side preprocessing from the header alone: causal biquads from steady state, z-score, clip. */
int main(int argc, char **argv) {
    FILE *in, *out;
    long n, t;
    int lead, k;
    double *x;
    if (argc != 4) return 2;
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    n = atol(argv[3]);
    x = malloc(sizeof(double) * (size_t)n);
    if (!in || !out || !x) return 3;
    for (lead = 0; lead < JEPA_EDGE_NUM_LEADS; lead++) {
        double z[JEPA_EDGE_NUM_SOS][2];
        if (fread(x, sizeof(double), (size_t)n, in) != (size_t)n) return 4;
        for (k = 0; k < JEPA_EDGE_NUM_SOS; k++) {
            z[k][0] = jepa_edge_sos_zi[2 * k] * x[0];
            z[k][1] = jepa_edge_sos_zi[2 * k + 1] * x[0];
        }
        for (t = 0; t < n; t++) {
            double v = x[t];
            float f;
            for (k = 0; k < JEPA_EDGE_NUM_SOS; k++) {
                const double *c = &jepa_edge_sos[6 * k];
                double y = c[0] * v + z[k][0];
                z[k][0] = c[1] * v - c[4] * y + z[k][1];
                z[k][1] = c[2] * v - c[5] * y;
                v = y;
            }
            v = (v - jepa_edge_mean[lead]) / jepa_edge_std[lead];
            if (v > JEPA_EDGE_CLIP) v = JEPA_EDGE_CLIP;
            if (v < -JEPA_EDGE_CLIP) v = -JEPA_EDGE_CLIP;
            f = (float)v;
            fwrite(&f, sizeof f, 1, out);
        }
    }
    fclose(out);
    free(x);
    return 0;
}
"""


def test_c_preprocessing_from_the_header_alone_reproduces_the_golden_inputs(signed_bundle: Path, exported: dict,
                                                                             tmp_path: Path) -> None:
    """What firmware does without Python: raw mV in, the model's input out, equal to the bundle's golden inputs."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no system C compiler (cc) on this machine")
    bundle = open_bundle(signed_bundle)
    inputs, _ = bundle.golden()
    assert exported["fs"] == bundle.preprocessing.fs  # PTB-XL is already at 500 Hz: no resampling step
    (tmp_path / "pre.c").write_text(C_PREPROCESS)
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I",
                    str(signed_bundle / "include"), str(tmp_path / "pre.c"), "-o", str(tmp_path / "pre")],
                   check=True, capture_output=True, text=True)
    for i, raw in enumerate(exported["raw"]):
        np.ascontiguousarray(raw, dtype="<f8").tofile(tmp_path / "raw.bin")
        subprocess.run([str(tmp_path / "pre"), str(tmp_path / "raw.bin"), str(tmp_path / "out.bin"),
                        str(raw.shape[-1])], check=True)
        from_c = np.fromfile(tmp_path / "out.bin", dtype="<f4").reshape(raw.shape)
        np.testing.assert_allclose(from_c, inputs[i], rtol=0, atol=1e-5)


# -- atomic writes ---------------------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from jepa_edge.bundle import BundleBuilder

    stage, out, spec_path = sys.argv[1:4]
    spec = json.loads(open(spec_path).read())
    real_replace = os.replace

    def slow_replace(src, dst):  # the last step of a build: the .partial folder becomes the bundle
        if str(src).endswith(".partial"):
            print("RENAME", flush=True)
            time.sleep(120)
        return real_replace(src, dst)

    os.replace = slow_replace
    with BundleBuilder(out) as b:
        b.add_file(spec["onnx"], "model/model.onnx", "onnx-fp32")
        if stage == "add":
            print("ADDED", flush=True)
            time.sleep(120)
        b.set(**spec["fields"])
        b.add_golden(np.load(spec["inputs"]), {k: np.load(v) for k, v in spec["outputs"].items()},
                     {"onnx-fp32": 1e-4})
""")


@pytest.mark.parametrize("stage,marker", [("add", "ADDED"), ("rename", "RENAME")])
def test_killed_build_leaves_nothing_that_verifies(exported: dict, tmp_path: Path, stage: str, marker: str) -> None:
    spec = {"onnx": str(exported["onnx"]), "fields": exported["fields"], "inputs": str(tmp_path / "in.npy"),
            "outputs": {k: str(tmp_path / f"{k}.npy") for k in exported["outputs"]}}
    np.save(spec["inputs"], exported["inputs"])
    for k, v in exported["outputs"].items():
        np.save(spec["outputs"][k], v)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    work = tmp_path / "out"
    work.mkdir()
    out = work / "bundle"
    child = subprocess.Popen([sys.executable, "-c", CHILD, stage, str(out), str(tmp_path / "spec.json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = child.stdout.readline().strip()
        assert line == marker, child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()
    assert not verify_bundle(out).ok
    leftovers = list(work.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".partial")
    if stage == "rename":  # killed after the manifest was written: still refused, by its unfinished name
        assert (leftovers[0] / "manifest.json").is_file()
    for folder in leftovers:
        report = verify_bundle(folder)
        assert not report.ok and "unfinished build" in report.problems[0]
        with pytest.raises(BundleError, match="unfinished build"):
            open_bundle(folder)


# -- updates ---------------------------------------------------------------------------------------
def test_update_adds_a_parity_report_and_re_signs(bundle_copy: Path, keys: dict, tmp_path: Path) -> None:
    bundle = open_bundle(bundle_copy, public_key=keys["public"])
    engine = bundle.engine(role="onnx-fp32")
    inputs, expected = bundle.golden()
    diff = float(np.abs(engine(inputs) - expected["logits"]).max())
    report = json.dumps({"max_abs_logit_diff": diff, "passed": diff <= ONNX_TOL}, sort_keys=True).encode()
    update_bundle(bundle_copy, add_files={"report/parity.json": (report, "report-json")},
                  set_fields={"parity": {"report": "report/parity.json", "passed": diff <= ONNX_TOL}},
                  sign_key=keys["private"], public_key=keys["public"])
    updated = open_bundle(bundle_copy, public_key=keys["public"], require_signature=True)
    assert updated.manifest["parity"] == {"report": "report/parity.json", "passed": True}
    assert json.loads(updated.file("report-json").read_bytes()) == json.loads(report)
    assert verify_bundle(bundle_copy, public_key=keys["public"]).ok
    # an unsigned update cannot keep the old signature
    update_bundle(bundle_copy, set_fields={"thresholds": [0.4] * len(updated.labels)},
                  tolerances={"onnx-fp32": {"logits": 2e-4}})
    assert open_bundle(bundle_copy).manifest["golden"]["tolerances"] == {"onnx-fp32": {"logits": 2e-4},
                                                                         "openvino-fp32": IR_TOL}
    assert not (bundle_copy / "manifest.json.sig").exists()
    assert verify_bundle(bundle_copy, run_golden=False).ok
    assert not verify_bundle(bundle_copy, public_key=keys["public"], run_golden=False).ok


def test_roles_map_to_the_back_end_that_runs_them() -> None:
    assert backend_for_role("onnx-qdq") == "onnxruntime" and backend_for_role("onnx-fp32") == "onnxruntime"
    assert backend_for_role("openvino-int8-xml") == "openvino" and backend_for_role("openvino-int8-bin") is None
    assert backend_for_role("tensorrt-engine") == "tensorrt" and backend_for_role("tensorrt-timing-cache") is None
    assert backend_for_role("report-json") is None and backend_for_role("golden-logits") is None


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_keys_new_and_verify(bundle_copy: Path, keys: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["keys", "new", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert os.stat(tmp_path / "k.key").st_mode & 0o777 == 0o600 and (tmp_path / "k.pub").is_file()
    assert runner.invoke(app, ["keys", "new", str(tmp_path / "k")]).exit_code == 2  # refuses to overwrite

    ok = runner.invoke(app, ["verify", str(bundle_copy), "--public-key", str(keys["public"]), "--no-golden",
                             "--json", str(tmp_path / "report.json")])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True
    wrong = runner.invoke(app, ["verify", str(bundle_copy), "--public-key", str(tmp_path / "k.pub"), "--no-golden"])
    assert wrong.exit_code == 1
    with open(bundle_copy / "golden" / "inputs.npy", "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0x80]))
    tampered = runner.invoke(app, ["verify", str(bundle_copy)])
    assert tampered.exit_code == 1 and "golden/inputs.npy" in tampered.output
