"""Names the CLI, the demo and the Streamlit page share (a leaf module: it imports nothing, so
the page and the commands need not import each other for a constant)."""

DEMO_STUDY_DIR = "demo-study"  # where `tinyscale demo` puts its study, and what `tinyscale app` opens
STUDY_ENV = "TINYSCALE_STUDY"  # how the launcher tells the page which study to open
DEVICES_ENV = "TINYSCALE_DEVICES"  # latency tables the page loads besides the study's (os.pathsep-separated)
