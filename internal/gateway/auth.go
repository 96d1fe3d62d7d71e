package gateway

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// authorize checks the request's Authorization header against the service token and
// returns "" when it is accepted, else a short reason for the 401 answer (never the
// token or the expected signature).
//
// Two forms are accepted, as in EAS:
//   - plain: "Authorization: <token>";
//   - signed (the official SDKs): "Authorization: EAS <sig>" where sig is
//     base64(HMAC-SHA1(token, METHOD\nContent-MD5\nContent-Type\nDate\nPATH)) and PATH is
//     "/api/predict/{service}{sub path}" as sent. The SDKs always POST, so METHOD is
//     "POST" for them; signing the actual method keeps a signature from being replayed
//     with another one. When Content-MD5 is present it must be the hex md5 of the body,
//     so the signature then covers the body too.
//
// The Date header is signed but not checked against the clock: EAS does not check it,
// and the Go SDK formats local time with a literal "GMT", so its Date is off by the
// client's UTC offset; refusing skewed dates would lock those clients out.
//
// A service without a token accepts nobody: the deploy layer always sets one.
func authorize(r *http.Request, token, path string, body []byte) string {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "missing Authorization header"
	}
	if token == "" {
		return "service has no access token"
	}
	sig, signed := strings.CutPrefix(auth, "EAS ")
	if !signed {
		if subtle.ConstantTimeCompare([]byte(auth), []byte(token)) != 1 {
			return "invalid access token"
		}
		return ""
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return "malformed signature"
	}
	contentMD5 := r.Header.Get("Content-MD5")
	if contentMD5 != "" {
		want, err := hex.DecodeString(contentMD5)
		sum := md5.Sum(body)
		if err != nil || !hmac.Equal(want, sum[:]) {
			return "Content-MD5 does not match the body"
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	// Write the signed string piecewise: no concatenation garbage per request.
	for i, part := range [...]string{r.Method, contentMD5, r.Header.Get("Content-Type"), r.Header.Get("Date"), path} {
		if i > 0 {
			mac.Write([]byte{'\n'})
		}
		mac.Write([]byte(part))
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "invalid signature"
	}
	return ""
}

// Sign returns the Authorization header value of a signed request, as the EAS SDKs
// build it. Useful for clients and tests.
func Sign(token, method, contentMD5, contentType, date, path string) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(method + "\n" + contentMD5 + "\n" + contentType + "\n" + date + "\n" + path))
	return "EAS " + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
