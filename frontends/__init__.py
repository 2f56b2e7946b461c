"""Frontend plugins (hook family 1): each turns a framework's model files into an onnx_ir.Model."""
