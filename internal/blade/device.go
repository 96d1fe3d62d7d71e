package blade

import (
	"fmt"
	"strings"
)

// PluginDevice resolves the device a plugin run optimizes for, from the command's
// --optimize_for and the platform's EAS_PLUGIN_DEVICE (the device the service will really be
// served on). This build optimizes for CPU only, so --optimize_for gpu is honoured only where
// the platform says the model will run on CPU anyway (easd serving a GPU processor on CPU
// because the host has no GPU runtime for it): then the run optimizes and verifies for CPU and
// note says so, for the report. Anywhere else gpu is refused: optimizing for a GPU nobody has
// would ship an unverified model.
func PluginDevice(optimizeFor, platformDevice string) (device, note string, err error) {
	switch strings.ToLower(optimizeFor) {
	case DeviceCPU:
		return DeviceCPU, "", nil
	case DeviceGPU:
		if strings.EqualFold(platformDevice, DeviceCPU) {
			return DeviceCPU, "--optimize_for gpu, but the platform serves this model on CPU (EAS_PLUGIN_DEVICE=cpu: no GPU runtime on the host): optimized and verified for CPU.", nil
		}
		return "", "", fmt.Errorf("blade: --optimize_for gpu: this blade build has no GPU support (its runtimes are CPU-only); use --optimize_for cpu, or let the platform serve the model on CPU (EAS_PLUGIN_DEVICE=cpu)")
	default:
		return "", "", fmt.Errorf("blade: --optimize_for %q: expected cpu or gpu", optimizeFor)
	}
}

// noteDevice records a PluginDevice note in a finished run's report and rewrites it.
func noteDevice(res *Result, requested, note string) error {
	if note == "" {
		return nil
	}
	res.Report.HardwareContext.RequestedDevice = strings.ToLower(requested)
	res.Report.Diagnosis.Message = strings.TrimSpace(note + " " + res.Report.Diagnosis.Message)
	if err := res.Report.Write(res.ReportPath); err != nil {
		return fmt.Errorf("blade: write report: %w", err)
	}
	return nil
}
