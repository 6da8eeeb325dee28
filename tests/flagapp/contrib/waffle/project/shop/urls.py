from django.urls import path

from . import views

urlpatterns = [
    path("checkout/", views.checkout),
    path("beta/", views.beta),
    path("", views.home),
    path("reports/", views.Reports.as_view()),
    path("survey/", views.Survey.as_view()),
    path("page/", views.page),
]
