package blade

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// writeStackedNpy writes n float32 samples of shape, uniform in [lo, hi), stacked along a
// leading axis in one .npy file (the layout blade unstacks into n samples).
func writeStackedNpy(t *testing.T, path string, n int, shape []int64, lo, hi float64, seed uint64) {
	t.Helper()
	dims := []string{strconv.Itoa(n)}
	count := n
	for _, d := range shape {
		dims = append(dims, strconv.FormatInt(d, 10))
		count *= int(d)
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	r := rand.New(rand.NewPCG(seed, 3))
	for range count {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(lo+(hi-lo)*r.Float64())))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOptimizeO2StaticOnOCRClassifier runs o2 with a calibration dataset: blade takes the
// static (QDQ) path, ONNX Runtime turns the convolutions into QLinearConv, and a static
// candidate is verified inside the o2 budget (sending sensitive nodes back to float if it
// must), or the report says why not.
func TestOptimizeO2StaticOnOCRClassifier(t *testing.T) {
	needORT(t)
	o := testOptions(t, LevelO2)
	o.CalibrationDataset = filepath.Join(t.TempDir(), "calibration.npy")
	writeStackedNpy(t, o.CalibrationDataset, 8, []int64{1, 3, 48, 192}, -1, 1, 42)
	res, err := Optimize(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	var entry string
	for _, e := range rep.Optimizations {
		if e.Name == staticOpt {
			entry = e.Status + ": " + e.Reason
		}
		if e.Name == "OnnxInt8Dynamic" {
			t.Errorf("calibration_dataset given but the dynamic path ran: %+v", e)
		}
	}
	if entry == "" {
		t.Fatalf("report has no %s entry: %+v", staticOpt, rep.Optimizations)
	}
	qlinear := regexp.MustCompile(`ORT formed (\d+) QLinearConv`)
	verified := false
	for _, c := range rep.Candidates {
		if !strings.Contains(c.Name, "static int8") {
			continue
		}
		t.Logf("%s: %s [%s] speedup %.2f acc %+v", c.Name, c.Verdict, c.Detail, c.Speedup, c.Accuracy)
		if m := qlinear.FindStringSubmatch(c.Detail); m == nil || m[1] == "0" {
			t.Errorf("candidate %s: ORT formed no QLinearConv (detail %q)", c.Name, c.Detail)
		}
		if c.Verdict == "chosen" || strings.HasPrefix(c.Verdict, "slower") || strings.HasPrefix(c.Verdict, "verified") {
			verified = true
			for _, a := range c.Accuracy {
				if a.MinCosine < 0.99 || (a.Top1Agreement >= 0 && a.Top1Agreement < 0.99) {
					t.Errorf("verified candidate %s output %s outside the o2 budget: %+v", c.Name, a.Output, a)
				}
			}
		}
	}
	if !verified && !strings.Contains(rep.Diagnosis.Message, "o2") {
		t.Errorf("no static candidate verified and the report does not say why (entry %q, message %q)", entry, rep.Diagnosis.Message)
	}
	if strings.Contains(rep.Chosen, "static int8") {
		compareShippedCosine(t, o, res, 0.99)
	}
	checkOutputFiles(t, res)
}
