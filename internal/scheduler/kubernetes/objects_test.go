package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct{ in, want string }{
		{"cls", "eas-cls"},
		{"cls_k8s_v2", "eas-cls-k8s-v2"},
		{"ends_", "eas-ends-" + hashOf("ends_")},
		{long, "eas-" + long[:48] + "-" + hashOf(long)},
	} {
		got := ObjectName(tc.in)
		if !strings.HasPrefix(got, strings.TrimSuffix(tc.want, hashOf(tc.in))) || len(got) > 63 {
			t.Errorf("ObjectName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
			t.Errorf("ObjectName(%q) = %q: not a valid Service name: %v", tc.in, got, errs)
		}
	}
	if ObjectName(long) == ObjectName(long[:62]+"b") {
		t.Errorf("two long names share objects")
	}
}

func hashOf(s string) string {
	n := ObjectName(s)
	return n[strings.LastIndex(n, "-")+1:]
}

func TestResourcesAndDigest(t *testing.T) {
	rr, err := Resources{CPU: 4, MemoryMB: 1536, GPU: 2}.requirements()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"cpu": "4", "memory": "1536Mi", "nvidia.com/gpu": "2"} {
		for _, l := range []string{"requests", "limits"} {
			list := rr.Requests
			if l == "limits" {
				list = rr.Limits
			}
			q := list[corev1.ResourceName(name)]
			if q.String() != want {
				t.Errorf("%s %s = %s, want %s", l, name, q.String(), want)
			}
		}
	}
	if _, err := (Resources{CPU: -1}).requirements(); err == nil {
		t.Errorf("negative cpu accepted")
	}
	o := Options{NodeSelectorKey: DefaultNodeSelectorKey}
	if _, err := o.nodeSelector(Resources{Group: "bad group!"}); err == nil || !strings.Contains(err.Error(), `resource "bad group!"`) {
		t.Errorf("bad resource group: %v", err)
	}
	d, err := BundleDigest("/data/bundles/" + strings.Repeat("ab", 32))
	if err != nil || d != "sha256:"+strings.Repeat("ab", 32) {
		t.Errorf("BundleDigest = %q, %v", d, err)
	}
	if _, err := BundleDigest("/tmp/x"); err == nil {
		t.Errorf("BundleDigest accepted a directory that is not a sealed bundle")
	}
}
