// Package version names this build of OpenEAS and the runtimes it is built for.
package version

// Version of OpenEAS.
const Version = "0.1.0"

// ONNXRuntime is the ONNX Runtime release scripts/fetch-deps.sh installs and the workers load.
const ONNXRuntime = "1.30.0"
