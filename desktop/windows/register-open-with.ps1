# Adds CovidGUI to Explorer's "Open with" for X-ray files, for this user only (HKCU; no
# administrator). Run it once from the unpacked bundle folder:
#   powershell -ExecutionPolicy Bypass -File register-open-with.ps1
# It never takes over a file type: CovidGUI is offered beside the default program.
$ErrorActionPreference = "Stop"
$exe = Join-Path $PSScriptRoot "CovidGUI.exe"
if (-not (Test-Path $exe)) { throw "CovidGUI.exe not found next to this script ($PSScriptRoot)" }
$extensions = @(".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
$classes = "HKCU:\Software\Classes"
$app = "$classes\Applications\CovidGUI.exe"
New-Item -Path "$app\shell\open\command" -Force | Out-Null
Set-ItemProperty -Path "$app\shell\open\command" -Name "(default)" -Value "`"$exe`" `"%1`""
Set-ItemProperty -Path $app -Name "FriendlyAppName" -Value "CovidGUI (chest X-ray second opinion)"
New-Item -Path "$app\SupportedTypes" -Force | Out-Null
$progId = "CovidGUI.XRay"
New-Item -Path "$classes\$progId\shell\open\command" -Force | Out-Null
Set-ItemProperty -Path "$classes\$progId" -Name "(default)" -Value "X-ray image (CovidGUI)"
Set-ItemProperty -Path "$classes\$progId\shell\open\command" -Name "(default)" -Value "`"$exe`" `"%1`""
foreach ($ext in $extensions) {
    Set-ItemProperty -Path "$app\SupportedTypes" -Name $ext -Value ""
    New-Item -Path "$classes\$ext\OpenWithProgids" -Force | Out-Null
    Set-ItemProperty -Path "$classes\$ext\OpenWithProgids" -Name $progId -Value ([byte[]]@()) -Type Binary
}
Write-Output "CovidGUI is now offered in Open with for: $($extensions -join ', ')"
