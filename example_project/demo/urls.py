from django.urls import path

from . import views

app_name = "demo"

urlpatterns = [
    path("", views.index, name="index"),
    path("checkout/new/", views.new_checkout, name="new-checkout"),
    path("checkout/express/", views.ExpressPay.as_view(), name="express-pay"),
    path("status/", views.status, name="status"),
]
