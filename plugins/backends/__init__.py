"""Built-in backends: ``cpu`` (ONNX Runtime) and ``reference`` (onnx's ReferenceEvaluator)."""
