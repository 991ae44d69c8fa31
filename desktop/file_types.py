"""The file types the bundle declares to the operating system, so that "Open with" and a
double-click start CovidGUI on an X-ray (``CovidGUI FILE…``, see covidgui/cli.py).

One list, read by build.spec (macOS: CFBundleDocumentTypes in the .app's Info.plist), checked by
tests/test_open_files.py against the Linux .desktop file and the Windows registration script, and
against the extensions the loader opens (covidgui.core.io.images / covidgui.core.io.dicom).
"""

# (name, MIME type, macOS UTI, extensions): what the app opens. DICOM files often have no
# extension at all; those are opened through "Open with" / the dialog's "All files".
FILE_TYPES = [
    ("DICOM image", "application/dicom", "org.nema.dicom", ["dcm", "dicom", "dic"]),
    ("PNG image", "image/png", "public.png", ["png"]),
    ("JPEG image", "image/jpeg", "public.jpeg", ["jpg", "jpeg"]),
    ("TIFF image", "image/tiff", "public.tiff", ["tif", "tiff"]),
    ("BMP image", "image/bmp", "com.microsoft.bmp", ["bmp"]),
]


def macos_info_plist() -> dict:
    """The Info.plist entries: the document types (CovidGUI is an alternate viewer, never the
    owner: LSHandlerRank Alternate) and the DICOM type itself, which macOS does not know."""
    return {
        "CFBundleDocumentTypes": [
            {"CFBundleTypeName": name, "CFBundleTypeRole": "Viewer", "LSHandlerRank": "Alternate",
             "LSItemContentTypes": [uti], "CFBundleTypeExtensions": extensions}
            for name, _mime, uti, extensions in FILE_TYPES
        ],
        "UTImportedTypeDeclarations": [{
            "UTTypeIdentifier": "org.nema.dicom",
            "UTTypeDescription": "DICOM image",
            "UTTypeConformsTo": ["public.data", "public.image"],
            "UTTypeTagSpecification": {"public.filename-extension": ["dcm", "dicom", "dic"],
                                       "public.mime-type": ["application/dicom"]},
        }],
    }
