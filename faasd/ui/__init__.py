"""The dashboard's static files (index.html, app.js, app.css), served at /ui by faasd/control/ui.py."""
