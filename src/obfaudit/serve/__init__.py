"""The study's system, live: the server (InfNet behind the Open Inference Protocol), the edge
client (obfuscates and sends), the tap (an eavesdropper recording the wire) and the ONNX
export of the obfuscator. :mod:`.protocol` is the one codec all of them share."""
