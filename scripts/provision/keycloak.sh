#!/usr/bin/env bash
# Fetch Keycloak (org.keycloak:keycloak-quarkus-dist, zip) from Maven Central with Maven and
# unpack it into the cache. Keycloak then runs on the machine's Java (17 or newer).
. "$(dirname "$0")/../lib.sh"
out="$CACHE_DIR/keycloak/$KEYCLOAK_VERSION"
if [ -x "$out/bin/kc.sh" ]; then ok "keycloak $KEYCLOAK_VERSION cached in $out"; exit 0; fi
need mvn "fetch keycloak" "apt-get install maven"
need unzip "fetch keycloak" "apt-get install unzip"
need java "fetch keycloak" "install a Java 17+ runtime"
step "fetching keycloak $KEYCLOAK_VERSION from Maven Central (about 200 MB)"
tmp="$CACHE_DIR/keycloak/download-$KEYCLOAK_VERSION"
mkdir -p "$tmp"
mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
  -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
  -DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1 \
  || die "step 'fetch keycloak': maven could not fetch org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION (see $tmp/mvn.log)"
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
unzip -q "$tmp/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d "$out.tmp"
mv "$out.tmp/keycloak-$KEYCLOAK_VERSION" "$out"; rm -rf "$out.tmp" "$tmp"
ok "keycloak $KEYCLOAK_VERSION unpacked into $out"
