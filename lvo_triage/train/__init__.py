"""Training, networks and ONNX export. torch lives here; the inference path never imports it."""
