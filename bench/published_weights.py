"""Published PyTorch weights converted to visionfw: parity with PyTorch, and VDSR on Set5.

1. Each model in ``../shared/weights/parity`` is converted from its ``.pt``/``.pth`` file (read
   without torch) and run on the stored input; the max |Keras - PyTorch| is printed.
2. VDSR (twtygqyy/pytorch-vdsr, ``model_epoch_50.pth``, preset ``vdsr-y``) is evaluated on Set5
   x2, x3, x4 with test.py's protocol, next to the source repository's figures.
3. The Nhat-Thanh SRCNN, FSRCNN and ESPCN weights on Set5 with the same protocol (their own
   figures are on 3-channel YCbCr with a blurred LR, so there is nothing to compare with).

    python bench/published_weights.py [--weights ../shared/weights] [--data ../shared/data]
"""
import os
import pathlib
import sys
import time

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The source repository's README, Set5 PSNR (Y, border shaved by the scale).
VDSR_SET5 = {2: 37.65, 3: 33.77, 4: 31.45}

from visionfw.convert import published_parity  # noqa: E402


@click.command()
@click.option("--weights", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=ROOT.parent / "shared" / "weights", show_default=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=ROOT.parent / "shared" / "data", show_default=True,
              help="Folder holding benchmark/Set5.")
@click.option("--scales", default="2,3,4", show_default=True)
def main(weights, data, scales):
    import numpy as np

    from visionfw import runtime

    runtime.import_tensorflow_quietly()
    runtime.configure_threads()
    from visionfw.convert import convert_model
    from visionfw.evaluate import evaluate, resolve_dataset
    from visionfw.metrics import protocol_description

    print("Parity with PyTorch (max |Keras - PyTorch| on the stored vectors, float32)")
    for name, hp, checkpoint, vectors in published_parity():
        model, plan = convert_model(name, weights / checkpoint, **hp)
        z = np.load(weights / "parity" / f"{vectors}.npz")
        x = [z["input_nhwc"], z["code"]] if "code" in z.files else z["input_nhwc"]
        diff = float(np.abs(model.predict(x, verbose=0) - z["output_nhwc"]).max())
        print(f"  {name:<14} {os.path.basename(checkpoint):<26} {len(plan):>3} tensors   "
              f"{diff:.2e}")

    print("\nVDSR (vdsr-y, model_epoch_50.pth) on Set5. "
          f"Protocol: {protocol_description('y')}")
    print(f"{'scale':>5} | {'PSNR':>6} {'SSIM':>7} | {'bicubic':>7} | {'published':>9} | "
          f"{'diff':>6}")
    set5 = resolve_dataset("Set5", data / "benchmark")
    for scale in (int(s) for s in scales.split(",")):
        start = time.perf_counter()
        model, _ = convert_model("vdsr-y", weights / "vdsr/model_epoch_50.pth", scale=scale)
        r = evaluate(model, [set5], scale=scale)["results"][0]
        published = VDSR_SET5.get(scale, float("nan"))
        print(f"{'x%d' % scale:>5} | {r['psnr']:6.2f} {r['ssim']:7.4f} | {r['bicubic_psnr']:7.2f} "
              f"| {published:9.2f} | {r['psnr'] - published:+6.2f}   "
              f"({time.perf_counter() - start:.1f} s)")

    print("\nNhat-Thanh weights on Set5, same protocol (SRCNN: its output's centre, bicubic "
          "scored on the same pixels)")
    print(f"{'weights':<14} {'scale':>5} | {'PSNR':>6} {'SSIM':>7} | {'bicubic':>7}")
    runs = [("srcnn", {"k": k}, f"srcnn/SRCNN-9{k}5.pt") for k in (1, 3, 5)]
    runs += [(m, {}, f"{m}/{m.upper()}-x{{s}}.pt") for m in ("fsrcnn", "espcn")]
    for name, hp, pattern in runs:
        for scale in (int(s) for s in scales.split(",")):
            checkpoint = weights / pattern.format(s=scale)
            model, _ = convert_model(name, checkpoint, scale=scale, **hp)
            r = evaluate(model, [set5], scale=scale)["results"][0]
            print(f"{checkpoint.name:<14} {'x%d' % scale:>5} | {r['psnr']:6.2f} {r['ssim']:7.4f} "
                  f"| {r['bicubic_psnr']:7.2f}")


if __name__ == "__main__":
    main()
