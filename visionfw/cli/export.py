"""``python -m visionfw export``: a checkpoint as a SavedModel, TFLite or ONNX file, checked
against the Keras model on a probe."""
import click

from visionfw.cli.common import one_line_errors, start_runtime


@click.command("export")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite", "onnx"]),
              required=True, help="savedmodel (TensorFlow), tflite, or onnx (needs the extra: "
                                  "pip install .[export]).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder to create: the SavedModel itself, or model.tflite / model.onnx; "
                   "with export.json naming every input, its role and shape.")
@click.option("--size", default=None, metavar="HxW",
              help="Export for this LR size only (batch 1), e.g. 64x64; default: any size. "
                   "TFLite needs it for networks whose ops depend on the size (VDSR's bicubic "
                   "up-sampling).")
@click.option("--tflite-select-ops", is_flag=True,
              help="tflite: embed the TensorFlow ops TFLite's builtins lack (USRNet's FFT); "
                   "the app then needs the Flex delegate.")
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Largest max |export - keras| accepted on the probe.")
@click.option("--threads", type=int, default=None, help="TensorFlow intra-op threads.")
@one_line_errors
def export(weights, fmt, out, size, tflite_select_ops, tolerance, threads):
    """Write the network of WEIGHTS (a visionfw .weights.h5 checkpoint) for inference
    without visionfw, run the export on a probe of every input (an image, a kernel, a code,
    a noise level, the scale, as the network takes them) and print max |export - keras|
    per output. A larger difference, or a network the format cannot hold, is a one-line
    error and nothing is written."""
    import os

    from visionfw.errors import CheckpointError
    from visionfw.export import ExportError, export_weights, parse_size

    if tflite_select_ops and fmt != "tflite":
        raise ExportError("--tflite-select-ops applies to --format tflite")
    fixed = parse_size(size) if size is not None else None
    if not os.path.isfile(weights):
        raise CheckpointError(f"{weights}: no such weights file")
    start_runtime(threads)
    export_weights(weights, fmt, out, size=fixed, select_ops=tflite_select_ops,
                   tolerance=tolerance, echo=click.echo)
