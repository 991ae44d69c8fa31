#!/bin/sh
# Adds CovidGUI to the desktop's applications and its "Open with" menus for X-ray files (for this
# user only; no root). Run it from the unpacked bundle folder:  ./install-desktop-entry.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
mkdir -p "$apps" "$icons"
cp "$here/_internal/covidgui/resources/icon.png" "$icons/covidgui.png"
# The entry names the executable by its absolute path: the bundle is not on the PATH.
sed "s|^Exec=CovidGUI|Exec=\"$here/CovidGUI\"|" "$here/CovidGUI.desktop" > "$apps/covidgui.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" || true
echo "CovidGUI added to $apps (Open with > CovidGUI for DICOM, PNG, JPEG, TIFF and BMP files)."
