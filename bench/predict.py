"""Images/s of src.predict end to end (decode, resize, inference, argmax, write the mask and overlay
PNGs) for trained checkpoints, run three ways: eager PyTorch (as ``src.predict ckpt_path=`` runs it),
onnxruntime on the fp32 export and onnxruntime on the INT8 export (``src.export quantize=int8``),
with the test score each kept.

    python bench/zoo.py --recipes pets_lite0_fpn,pets_resnet34_unet,pets_unet   # the trained nets (about 75 min on 2 cores)
    python bench/predict.py                         # those three, on the 102 shared pets test photos
    python bench/predict.py --ckpt RUN/checkpoints/best.ckpt [--photos DIR] [--batch 8] [--passes 3] [--both-ranges] [--further]

Each checkpoint is exported twice (fp32, and INT8 calibrated on 200 seeded training images, which
also scores both files on the test split and records the change in model.json). Each backend's
predictor is built once (model loading is not timed); after one warm-up pass over the photos, the
backends take turns for ``--passes`` timed passes and the median is reported. Threads: PyTorch's
intra-op pool and onnxruntime's default one (one thread per physical core). Prints a table and one
JSON line per checkpoint. ``--further`` also times the two choices src.export does not offer:
onnxruntime's dynamic INT8 quantisation (weights ahead, activations' ranges at run time) and an
fp16 conversion (float32 in and out), to show whether they would pay off on this CPU.
``--both-ranges`` also exports INT8 with the other weight range (8 bits beside the default 7; see
src/quantize.py) and times it in the same turns, with its score.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.export import export, library_versions  # noqa: E402
from src.predict import image_files, onnx_predictor, output_stems, predict_files, torch_predictor  # noqa: E402
from src.utils.hardware import cpu_description  # noqa: E402

PETS = ROOT.parent / "shared" / "data" / "pets"
RECIPES = ("pets_resnet34_unet", "pets_unet", "pets_lite0_fpn")


def pets_test_photos(folder: Path) -> Path:
    """A folder of links to the shared pets test photos (annotations/test.txt), the split the scores are on."""
    names = [line.split()[0] for line in (PETS / "annotations" / "test.txt").read_text().splitlines() if line.strip()]
    folder.mkdir(parents=True)
    for name in names:
        (folder / f"{name}.jpg").symlink_to(PETS / "images" / f"{name}.jpg")
    return folder


def images_per_s(predictors: dict, files: list[Path], out: Path, batch: int, passes: int) -> dict[str, float]:
    stems = output_stems(files)
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for turn in range(passes + 1):  # turn 0 warms up each backend (allocations, onnxruntime's first-run planning)
        for name, predictor in predictors.items():
            started = time.perf_counter()
            with torch.inference_mode():
                predict_files(predictor, files, stems, out / name, batch, predictor.resize, [], [])
            if turn:
                seconds[name].append(time.perf_counter() - started)
    return {name: len(files) / statistics.median(times) for name, times in seconds.items()}


def further_predictors(fp32_dir: Path, work: Path) -> dict:
    """Dynamic INT8 and fp16 files made from the fp32 export, each with its model.json."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from onnxruntime.transformers.float16 import convert_float_to_float16

    files = {"onnxruntime dynamic int8": work / "dynamic" / "model.onnx", "onnxruntime fp16": work / "fp16" / "model.onnx"}
    for path in files.values():
        path.parent.mkdir(parents=True)
        shutil.copy(fp32_dir / "model.json", path.parent / "model.json")
    prepared = work / "dynamic" / "prepared.onnx"
    quant_pre_process(str(fp32_dir / "model.onnx"), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(str(prepared), str(files["onnxruntime dynamic int8"]), weight_type=QuantType.QUInt8)
    onnx.save(convert_float_to_float16(onnx.load(str(fp32_dir / "model.onnx")), keep_io_types=True), str(files["onnxruntime fp16"]))
    return {name: onnx_predictor(str(path)) for name, path in files.items()}


def bench_checkpoint(ckpt: Path, photos: Path, work: Path, batch: int, passes: int, further: bool, fixed_size: bool,
                     reduce_range: bool, both_ranges: bool) -> dict:  # fmt: skip
    fp32 = export(str(ckpt), "onnx", work / "fp32", fixed_size=fixed_size)
    int8 = export(str(ckpt), "onnx", work / "int8", quantize="int8", calibration_images=200, max_score_drop=1.0, fixed_size=fixed_size,
                  reduce_range=reduce_range)  # fmt: skip
    check = int8["quantization"]["check"]
    predictors = {
        "eager PyTorch": torch_predictor(str(ckpt)),
        "onnxruntime fp32": onnx_predictor(str(work / "fp32" / fp32["file"])),
        "onnxruntime int8": onnx_predictor(str(work / "int8" / int8["file"])),
    }
    if both_ranges:  # the other weight range too, timed in the same turns
        other = export(str(ckpt), "onnx", work / "int8_other", quantize="int8", calibration_images=200, max_score_drop=1.0,
                       fixed_size=fixed_size, reduce_range=not reduce_range)  # fmt: skip
        predictors["onnxruntime int8, other range"] = onnx_predictor(str(work / "int8_other" / other["file"]))
    if further:
        predictors.update(further_predictors(work / "fp32", work))
    files = image_files(photos)
    rates = images_per_s(predictors, files, work / "masks", batch, passes)
    row = {"checkpoint": str(ckpt), "fixed_size": fixed_size, "model": fp32["run_config"]["model"].get("_target_", "").rsplit(".", 1)[-1],
            "photos": len(files), "size": fp32["input"]["training_size"], "batch": batch,
            "images_per_s": {k: round(v, 2) for k, v in rates.items()},
            "int8_vs_eager": round(rates["onnxruntime int8"] / rates["eager PyTorch"], 2),
            "metric": check["metric"], "fp32_score": round(check["fp32"], 4), "int8_score": round(check["int8"], 4),
            "mask_agreement": round(check["mask_agreement"], 4), "test_images": check["test_images"],
            "int8_weights": int8["quantization"]["weights"], "cpu": int8["quantization"]["quantized_on"],
            "versions": fp32["exported_with"],
            "int8_mb": round((work / "int8" / int8["file"]).stat().st_size / 2**20, 1),
            "fp32_mb": round((work / "fp32" / fp32["file"]).stat().st_size / 2**20, 1)}  # fmt: skip
    if both_ranges:
        other_check = other["quantization"]["check"]
        row["other_range"] = {"int8_weights": other["quantization"]["weights"], "int8_score": round(other_check["int8"], 4),
                              "mask_agreement": round(other_check["mask_agreement"], 4),
                              "int8_vs_eager": round(rates["onnxruntime int8, other range"] / rates["eager PyTorch"], 2)}  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, action="append", help="a trained checkpoint (repeatable); default: bench/zoo.py's pets runs")
    parser.add_argument("--photos", type=Path, default=None, help="a folder of photos (default: the shared pets test photos)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--passes", type=int, default=3, help="timed passes per backend (the median is reported)")
    parser.add_argument("--fixed-size", action="store_true", help="export with fixed_size=true (see src/export.py)")
    parser.add_argument("--full-range", action="store_true", help="INT8 weights in 8 bits (reduce_range=false; see src/quantize.py)")
    parser.add_argument("--both-ranges", action="store_true", help="also export and time INT8 with the other weight range")
    parser.add_argument("--further", action="store_true", help="also time dynamic INT8 and fp16 (not offered by src.export)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the exports' checks and the INT8 score change
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # the exporter's optimiser names each merged initializer
    zoo = [ROOT / "outputs" / "zoo" / recipe / "checkpoints" / "best.ckpt" for recipe in RECIPES]
    ckpts = args.ckpt or [path for path in zoo if path.is_file()]
    if not ckpts:
        sys.exit(f"no checkpoints: give --ckpt, or train the pets recipes first (python bench/zoo.py --recipes {','.join(RECIPES)})")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        photos = args.photos or pets_test_photos(Path(scratch) / "photos")
        for index, ckpt in enumerate(ckpts):
            rows.append(bench_checkpoint(ckpt, photos, Path(scratch) / f"net{index}", args.batch, args.passes, args.further, args.fixed_size,
                                         not args.full_range, args.both_ranges))  # fmt: skip
            print(json.dumps({"benchmark": "predict", **rows[-1]}), flush=True)
    versions = ", ".join(f"{name} {number}" for name, number in library_versions().items())
    print(f"{cpu_description()}, {os.cpu_count()} logical cores; PyTorch with {torch.get_num_threads()} threads, onnxruntime with its "
          f"default threads (one per physical core); {versions}; batch {args.batch}, median of {args.passes} passes; "
          f"INT8 weights in {8 if args.full_range else 7} bits")  # fmt: skip
    print("| checkpoint | photos | eager PyTorch | onnxruntime fp32 | onnxruntime INT8 | INT8 vs eager | test score fp32 → INT8 | mask agreement | MB fp32 → INT8 |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    for row in rows:
        rate = row["images_per_s"]
        print(f"| {row['checkpoint']} | {row['photos']} | {rate['eager PyTorch']:.1f} | {rate['onnxruntime fp32']:.1f} | "
              f"{rate['onnxruntime int8']:.1f} | {row['int8_vs_eager']:.2f}x | {row['metric']} {row['fp32_score']:.4f} → "
              f"{row['int8_score']:.4f} | {100 * row['mask_agreement']:.2f} % | {row['fp32_mb']} → {row['int8_mb']} |")  # fmt: skip
        if "other_range" in row:
            other = row["other_range"]
            print(f"  INT8 with {other['int8_weights']}: {rate['onnxruntime int8, other range']:.1f} images/s ({other['int8_vs_eager']:.2f}x), "
                  f"{row['metric']} {other['int8_score']:.4f}, mask agreement {100 * other['mask_agreement']:.2f} %")  # fmt: skip
        further = {name: value for name, value in rate.items() if not name.startswith(("eager", "onnxruntime fp32", "onnxruntime int8"))}
        if further:
            print("  further (not offered): " + ", ".join(f"{name} {value:.1f} images/s" for name, value in further.items()))


if __name__ == "__main__":
    main()
