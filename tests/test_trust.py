"""One trust policy for every verb that opens a bundle, the run-time ISA check, the profile's engine settings
and budgets — on a bundle of the real fixture classifier (tiny JEPA teacher + probe on PTB-XL)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jepa_edge.bundle import BundleBuilder, BundleError, new_keypair, open_bundle, update_bundle, verify_bundle
from jepa_edge.bundle.manifest import manifest_bytes
from jepa_edge.cli import app
from jepa_edge.devices.isa import IsaError, IsaWarning, detect_isa
from jepa_edge.devices.profiles import PROFILE_DIR, ProfileError, load_profile


@pytest.fixture(scope="module")
def parts(ecg_classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """FP32 ONNX + IR of the classifier, golden vectors on 2 random inputs of the model's shape, two key pairs."""
    import torch

    from jepa_edge.models.checkpoint import load_classifier
    from jepa_edge.runtimes.export import export_onnx, export_openvino

    model, meta = load_classifier(ecg_classifier_dir)
    out = tmp_path_factory.mktemp("trust")
    onnx_path = export_onnx(model, out / "model.onnx", opset=18, dynamo=False)
    xml = export_openvino(onnx_path, out / "model.xml")
    x = np.random.default_rng(0).normal(0, 0.3, (2, 12, meta["encoder"].get("samples", 5000))).astype(np.float32)
    with torch.no_grad():
        logits, emb = model(torch.from_numpy(x))
    keys = {"release": new_keypair(out / "release"), "other": new_keypair(out / "other")}
    return {"onnx": onnx_path, "xml": xml, "meta": meta, "x": x, "out": {"logits": logits.numpy(),
            "embedding": emb.numpy()}, "keys": keys, "dir": out}


def make_bundle(parts: dict, out: Path, sign: bool = True, profile: dict | None = None,
                quantization: dict | None = None) -> Path:
    """A cart bundle for `profile` (default: cart-x86 as installed). The FP32 IR also stands under the INT8 IR's
    role, so the device's artefact runs here without a quantization step (the budget mechanics, not INT8)."""
    meta = parts["meta"]
    profile = profile if profile is not None else load_profile("cart-x86").to_dict()
    with BundleBuilder(out, sign_key=parts["keys"]["release"][0] if sign else None) as b:
        b.add_file(parts["onnx"], "model.onnx", "onnx-fp32")
        b.add_file(parts["xml"], "openvino/model_int8.xml", "openvino-int8-xml")
        b.add_file(parts["xml"].with_suffix(".bin"), "openvino/model_int8.bin", "openvino-int8-bin")
        b.set(model={"name": "trust-test", "task": meta["task"], "modality": "ecg", "encoder": meta["encoder"],
                     "head": meta["head"], "parameters": 1, "source_checkpoint_sha256": meta["weights_sha256"]},
              target={"kind": "cart-cpu", "profile": profile["name"], "profile_data": profile},
              runtimes={"openvino": None, "onnxruntime": None, "nncf": None, "tensorrt": None, "opset": 18},
              calibration=None,
              quantization=quantization or {"recipe": None, "precision": "fp32", "fallback_layers": []},
              io={"inputs": [{"name": "ecg", "shape": ["batch", 12, parts["x"].shape[2]], "dtype": "float32",
                              "layout": "(batch, leads, samples)"}],
                  "outputs": [{"name": "logits", "shape": ["batch", len(meta["labels"])], "dtype": "float32"},
                              {"name": "embedding", "shape": ["batch", parts["out"]["embedding"].shape[1]],
                               "dtype": "float32"}]},
              preprocessing=meta["preprocessing"], labels=meta["labels"], thresholds=meta["thresholds"])
        b.add_golden(parts["x"], parts["out"], {"onnx-fp32": 1e-3})
    return out


def tamper_and_rehash(bundle: Path) -> None:
    """Edit a file, recompute its hash and size in manifest.json, keep the old signature: what an attacker
    who cannot sign does. Only the signature can tell."""
    target = bundle / "golden" / "inputs.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x40
    target.write_bytes(bytes(data))
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "golden/inputs.npy":
            entry["sha256"], entry["bytes"] = hashlib.sha256(bytes(data)).hexdigest(), len(data)
    (bundle / "manifest.json").write_bytes(manifest_bytes(manifest))


def verb_calls(bundle: Path, teacher: Path, tmp: Path) -> dict[str, list[str]]:
    """Every verb that opens a bundle, as command lines (each fails at the bundle, before any other work)."""
    return {"verify": ["verify", str(bundle), "--no-golden"],
            "stream": ["stream", str(bundle), "--stdin-int16", "--fs", "360", "--leads", "II"],
            "parity": ["parity", "--teacher", str(teacher), "--bundle", str(bundle), "--no-sweep"],
            "bench": ["bench", str(bundle), "--runs", "1"],
            "engine build": ["engine", "build", str(bundle)],
            "echo infer": ["echo", "infer", str(bundle), str(tmp / "clip.avi")],
            "firmware build": ["firmware", "build", str(bundle), "--out", str(tmp / "fw")]}


def test_tampered_and_rehashed_bundle_is_refused_by_every_verb(parts, ecg_classifier_dir, tmp_path):
    bundle = make_bundle(parts, tmp_path / "b")
    public = str(parts["keys"]["release"][1])
    open_bundle(bundle, public_key=public)  # the untouched bundle opens with its key
    tamper_and_rehash(bundle)
    assert verify_bundle(bundle, run_golden=False).ok  # hashes alone no longer tell: only the signature does
    with pytest.raises(BundleError, match="does not match manifest.json"):
        open_bundle(bundle, public_key=public)
    runner = CliRunner()
    for verb, args in verb_calls(bundle, ecg_classifier_dir, tmp_path).items():
        result = runner.invoke(app, [*args, "--public-key", public])
        assert result.exit_code in (1, 2), (verb, result.output)
        assert "does not match manifest.json" in result.output, (verb, result.output)


def test_re_signing_needs_the_old_signature_to_verify_first(parts, ecg_classifier_dir, tmp_path):
    private, public = (str(p) for p in parts["keys"]["release"])
    bundle = make_bundle(parts, tmp_path / "b")
    tamper_and_rehash(bundle)
    sig_before = (bundle / "manifest.json.sig").read_bytes()
    with pytest.raises(BundleError, match="does not match manifest.json"):  # checked with the key's public half
        update_bundle(bundle, set_fields={"thresholds": [0.4] * len(parts["meta"]["labels"])}, sign_key=private)
    runner = CliRunner()
    for args in (["parity", "--teacher", str(ecg_classifier_dir), "--bundle", str(bundle), "--sign-key", private],
                 ["engine", "build", str(bundle), "--sign", private]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "does not match manifest.json" in result.output, result.output
    assert (bundle / "manifest.json.sig").read_bytes() == sig_before  # nothing re-signed the tampered bundle
    unsigned = make_bundle(parts, tmp_path / "u", sign=False)
    with pytest.raises(BundleError, match="refusing to sign"):
        update_bundle(unsigned, set_fields={}, sign_key=private)
    good = make_bundle(parts, tmp_path / "g")
    with pytest.raises(BundleError, match="does not match"):  # signed by another key than the one offered
        update_bundle(good, set_fields={}, sign_key=private, public_key=parts["keys"]["other"][1])
    update_bundle(good, set_fields={"thresholds": [0.4] * len(parts["meta"]["labels"])}, sign_key=private)
    assert open_bundle(good, public_key=public, require_signature=True).manifest["thresholds"][0] == 0.4


def test_unsigned_bundle_is_refused_where_a_signature_is_required(parts, ecg_classifier_dir, tmp_path):
    unsigned = make_bundle(parts, tmp_path / "u", sign=False)
    runner = CliRunner()
    for verb, args in verb_calls(unsigned, ecg_classifier_dir, tmp_path).items():
        result = runner.invoke(app, [*args, "--require-signature"])
        assert result.exit_code in (1, 2) and "signature is required" in result.output, (verb, result.output)
    # a device profile that requires signatures: as the bundle stores it, or named on the command line
    strict = dataclasses.replace(load_profile("cart-x86"), name="cart-strict", require_signature=True)
    stored = make_bundle(parts, tmp_path / "s", sign=False, profile=strict.to_dict())
    with pytest.raises(BundleError, match="'cart-strict' .* requires a signature"):
        open_bundle(stored)
    toml = tmp_path / "strict.toml"
    toml.write_text((PROFILE_DIR / "cart-x86.toml").read_text().replace('name = "cart-x86"', 'name = "strict"')
                    .replace("require_signature = false", "require_signature = true"))
    from jepa_edge.bundle.trust import TrustPolicy

    with pytest.raises(BundleError, match="requires a signature"):
        open_bundle(unsigned, TrustPolicy(profile=str(toml)))
    result = runner.invoke(app, ["parity", "--teacher", str(ecg_classifier_dir), "--bundle", str(unsigned),
                                 "--profile", str(toml)])
    assert result.exit_code == 2 and "requires a signature" in result.output, result.output
    signed = make_bundle(parts, tmp_path / "ok", profile=strict.to_dict())
    open_bundle(signed, public_key=parts["keys"]["release"][1])  # signed and checked: fine
    with pytest.raises(BundleError, match="refusing an unsigned update"):  # would strip the required signature
        update_bundle(signed, set_fields={}, public_key=parts["keys"]["release"][1])
    from jepa_edge.devices.build import build_bundle

    with pytest.raises(ProfileError, match="requires signed bundles"):
        build_bundle(ecg_classifier_dir, "cart-cpu", tmp_path / "never", profile=str(toml))


def _cpu(*flags: str):
    here = detect_isa()
    return dataclasses.replace(here, model_name="Fake CPU", flags={f: f in flags for f in here.flags})


def test_cart_bundle_checks_the_cpu_isa_when_opened(parts, tmp_path):
    bundle = make_bundle(parts, tmp_path / "b", sign=False)
    with pytest.raises(IsaError, match=r"requires ISA flags \['avx2'\].*Fake CPU"):
        open_bundle(bundle, isa=_cpu("avx512f"))
    report = verify_bundle(bundle, run_golden=False, isa=_cpu())
    assert not report.ok and "avx2" in report.problems[0]
    with pytest.warns(IsaWarning, match=r"none of .*preferred.*2x to 64x slower.*INT8_MACS_PER_CYCLE"):
        open_bundle(bundle, isa=_cpu("avx2"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_bundle(bundle, isa=_cpu("avx2", "avx_vnni"))  # one preferred path is enough: no warning
    other = make_bundle(parts, tmp_path / "j", sign=False,
                        profile={**load_profile("cart-x86").to_dict(), "required_isa": [], "preferred_isa": [],
                                 "name": "cart-any"})
    open_bundle(other, isa=_cpu())  # a profile without ISA needs is not checked against this CPU


def test_int8_weights_that_saturate_on_this_cpu_warn_when_opened(parts, tmp_path):
    """An NNCF IR with 8-bit weights (overflow fix off or first layer only, or a bundle from before the manifest
    said) on a CPU without a VNNI/AMX dot product: a warning naming the fix and the CPU; 7-bit weights, or a CPU
    with VNNI, open without it."""
    def nncf(**fix):
        return {"recipe": "nncf", "precision": "int8", "fallback_layers": [],
                "details": {"tool": "nncf.quantize", "preset": "performance", **fix}}

    def saturation_warnings(bundle, cpu):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            open_bundle(bundle, isa=cpu)
        return [str(w.message) for w in caught if "8-bit weights" in str(w.message)]

    eight = make_bundle(parts, tmp_path / "first", sign=False, quantization=nncf(overflow_fix="first_layer"))
    old = make_bundle(parts, tmp_path / "old", sign=False, quantization=nncf())
    seven = make_bundle(parts, tmp_path / "seven", sign=False, quantization=nncf(overflow_fix="enable"))
    for bundle, fix in ((eight, "first_layer"), (old, "first_layer")):
        (message,) = saturation_warnings(bundle, _cpu("avx2"))
        assert f"overflow fix '{fix}'" in message and "Fake CPU" in message and "AVX2" in message
        assert saturation_warnings(bundle, _cpu("avx2", "avx512_vnni")) == []
    assert saturation_warnings(seven, _cpu("avx2")) == []
    report = verify_bundle(eight, run_golden=False, isa=_cpu("avx2"))
    assert report.ok and any(c.kind == "isa" and c.ok is None and "8-bit weights" in c.detail for c in report.checks)


def test_engines_take_threads_and_precision_hint_from_the_profile(parts, tmp_path):
    profile = {**load_profile("cart-x86").to_dict(), "threads": 1, "openvino_precision_hint": "bf16"}
    bundle = open_bundle(make_bundle(parts, tmp_path / "b", sign=False, profile=profile))
    ov = bundle.engine(role="openvino-int8-xml").info()
    # the profile's hint is what the engine asks for; OpenVINO runs bf16 only where the CPU has it (AVX512-BF16,
    # AMX) and f32 on an AVX2 machine
    assert ov["threads"] == 1 and ov["requested_precision"] == "bf16"
    assert ov["inference_precision"] == detect_isa().default_float_precision
    assert bundle.engine(role="onnx-fp32").info()["threads"] == 1
    explicit = bundle.engine(role="openvino-int8-xml", threads=2, precision="f32").info()  # the caller wins
    assert explicit["threads"] == 2 and explicit["inference_precision"] == "f32"


def test_budgets_are_measured_and_compared(parts, tmp_path):
    from jepa_edge.devices.budget import budget_result, measure

    profile = load_profile("cart-x86")
    measured = measure(parts["xml"], parts["x"], profile, runs=5)
    result = budget_result(measured, profile, "openvino-int8-xml")
    assert result["measured"] and result["threads"] == profile.threads
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p90"]
    assert result["memory_mb"]["peak_rss"] > result["memory_mb"]["baseline_rss"] > 0
    assert result["latency_ms"]["budget"] == 50.0 and result["memory_mb"]["budget"] == 512
    assert result["passed"] == (result["latency_ms"]["passed"] and result["memory_mb"]["passed"])
    assert result["machine"]["cpu"] == detect_isa().model_name
    tight = dataclasses.replace(profile, latency_budget_ms=1e-6)
    assert budget_result(measured, tight, "openvino-int8-xml")["passed"] is False
    # bench compares against the budgets of the bundle's profile: over budget -> exit 1
    bundle = make_bundle(parts, tmp_path / "b", sign=False, profile={**profile.to_dict(), "latency_budget_ms": 1e-6})
    result = CliRunner().invoke(app, ["bench", str(bundle), "--runs", "3"])
    assert result.exit_code == 1 and "OVER" in result.output and "peak memory" in result.output, result.output
