// Re-post the provider's form_post answer from Warmline's own origin (see server/web.py).
document.getElementById("relay").submit();
